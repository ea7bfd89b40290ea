"""``rtformer train`` under torchrun: two real processes, gloo on the CPU, against one process.

What can be compared, and how tightly, without SyncBatchNorm (torch runs it on GPUs only): each process
normalises over its own share of the global batch. The data makes that share's statistics equal the whole
batch's: two pictures, two frames each (with four different label images), and a seed whose batches give each
process one frame of each picture; crops are the whole frame, augmentation and stochastic depth are off and
no pixel is ignored. The forward pass, and so the first loss, is then the one-process computation up to float
summation order: equal to the 6 digits log.csv keeps (tolerance 1e-5). Backward still differs a little: the
gradient through BatchNorm's batch statistics averages over each process's share, not the whole batch (what
SyncBatchNorm would synchronise). Measured, later losses differ by 4e-6 (step 2) and 1.4e-4 (step 3) relative;
the tolerance there is 1e-3. Each label image is mostly one class of its own, so a process training on the
wrong share of the batch would be off by several percent from the first step.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import torch
except ImportError:
    pytest.skip('torch is not installed', allow_module_level=True)
from PIL import Image

from rtformer_ros.datasets import LabelMap, folder_samples
from rtformer_ros.metrics import ConfusionMatrix
from rtformer_ros.model import build_rtformer, load_checkpoint
from rtformer_ros.train.datasets import IterationBatches, SegmentationDataset
from rtformer_ros.train.distributed import weights_digest

REPO = Path(__file__).resolve().parents[1]
SIDE = 64  # the smallest crop the model takes
CLASSES = 11  # camvid names


def balanced_seed(iters: int = 3) -> int:
    """A seed whose batches give each of two processes one frame of picture A (f0, f1) and one of B (f2, f3)."""
    def halves_mixed(seed: int, it: int) -> bool:
        first_half = IterationBatches(4, 4, seed, it, it + 1, rank=0, world=2).batch(it)
        return sorted(index // 2 for index, _ in first_half) == [0, 1]
    return next(seed for seed in range(1000) if all(halves_mixed(seed, it) for it in range(iters)))


@pytest.fixture(scope='module')
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four training frames of two pictures with four different label images; three validation frames."""
    root = tmp_path_factory.mktemp('dist_data')
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (2, SIDE, SIDE, 3), np.uint8)
    for split, count in (('train', 4), ('val', 3)):
        for kind in ('images', 'labels'):
            (root / split / kind).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(pictures[i // 2]).save(root / split / 'images' / f'f{i}.png')
            blocks = rng.integers(0, CLASSES, (SIDE // 8, SIDE // 8), np.uint8)
            blocks[rng.random(blocks.shape) < 0.7] = 3 * i + 1  # mostly a class of this frame's own
            labels = np.repeat(blocks, 8, 0).repeat(8, 1)
            Image.fromarray(labels).save(root / split / 'labels' / f'f{i}.png')
    return root


def rtformer_train(folder: Path, out: Path, *extra: str, processes: int = 1) -> None:
    """The real command line, in fresh processes; with ``processes`` > 1 under torchrun (standalone, gloo)."""
    args = ['--dataset', 'folder', '--classes', 'camvid', '--out', str(out), '--model', 'slim',
            '--drop-path-rate', '0', '--crop', f'{SIDE}x{SIDE}', '--scale-range', '1', '1', '0.25', '--no-flip',
            '--no-jitter', '--no-amp', '--batch-size', '4', '--iters', '3', '--warmup-iters', '0',
            '--val-every', '1', '--log-every', '1', '--workers', '0', '--threads', '1', '--device', 'cpu',
            '--seed', str(balanced_seed()),
            *(f'--{s}-{k}={folder / s / k}' for s in ('train', 'val') for k in ('images', 'labels')), *extra]
    launcher = ([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={processes}']
                if processes > 1 else [sys.executable])
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'TQDM_DISABLE': '1'}
    result = subprocess.run([*launcher, '-m', 'rtformer_ros.cli', 'train', *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def losses(out: Path) -> dict[int, float]:
    with open(out / 'log.csv', newline='') as f:
        return {int(row['iter']): float(row['loss']) for row in csv.DictReader(f)}


def assert_validation_is_the_whole_split(folder: Path, best_pt: Path) -> None:
    """The mIoU the processes logged (three frames over two: 2 + 1, confusion matrices summed) is that of one
    process scoring the saved model on every frame."""
    best = load_checkpoint(best_pt)
    dataset = SegmentationDataset(folder_samples(folder / 'val' / 'images', folder / 'val' / 'labels'),
                                  LabelMap(CLASSES, ()))
    conf = ConfusionMatrix(CLASSES)
    model = best.model.eval()
    with torch.no_grad():
        for i in range(len(dataset)):
            image, label = dataset[i]
            conf.update(label, model(torch.from_numpy(image)[None], out_size=label.shape).argmax(1)[0].numpy())
    expect = {name: (None if np.isnan(v) else float(v)) for name, v in zip(best.classes.names, conf.iou, strict=True)}
    assert best.extra['per_class_iou'] == pytest.approx(expect, abs=1e-6)
    assert best.extra['val_miou'] == pytest.approx(conf.miou, abs=1e-6) and conf.total == 3 * SIDE * SIDE


def test_two_gloo_processes_train_like_one_and_resume_with_another_world_size(folder: Path, tmp_path: Path) -> None:
    one, two = tmp_path / 'one', tmp_path / 'two'
    rtformer_train(folder, one)
    rtformer_train(folder, two, '--stop-at', '2', processes=2)

    state = torch.load(two / 'last.pt', weights_only=True)
    assert state['iteration'] == 2 and state['world_size'] == 2
    # Both processes hashed their parameters at the save; the hash is that of the weights rank 0 wrote.
    model = build_rtformer('slim', num_classes=CLASSES)
    model.load_state_dict(state['model'])
    assert state['weights_sha256'] == [weights_digest(model)] * 2
    lead_in = losses(two)
    assert sorted(lead_in) == [1, 2] and not (two / 'final.pt').exists()
    assert_validation_is_the_whole_split(folder, two / 'best.pt')

    # The same run continues in one process (a world size change) to the end.
    rtformer_train(folder, two, '--resume')
    reference, resumed = losses(one), losses(two)
    assert sorted(reference) == sorted(resumed) == [1, 2, 3]
    for it, rel in ((1, 1e-5), (2, 1e-3), (3, 1e-3)):
        assert resumed[it] == pytest.approx(reference[it], rel=rel), (it, resumed, reference)
    assert reference[3] < reference[1]  # it learns at all, so equal losses are not equal constants
    assert load_checkpoint(two / 'final.pt').extra['iteration'] == 3


def test_iteration_batches_split_the_global_batch_over_processes() -> None:
    whole = IterationBatches(10, 4, seed=3, start=0, stop=6)
    shares = [IterationBatches(10, 4, seed=3, start=0, stop=6, rank=r, world=2) for r in range(2)]
    for it in range(6):
        assert shares[0].batch(it) + shares[1].batch(it) == whole.batch(it)
    with pytest.raises(ValueError, match='a batch of 4 has no equal share 0 of 3'):
        IterationBatches(10, 4, seed=3, start=0, stop=6, rank=0, world=3)


def test_options_that_cannot_split_are_one_named_error() -> None:
    from rtformer_ros.train import TrainConfig
    from rtformer_ros.train.distributed import Distributed
    from rtformer_ros.train.loop import TrainError, _check_world

    two = Distributed(rank=0, local_rank=0, world=2, active=True)
    cpu = torch.device('cpu')
    _check_world(TrainConfig(batch_size=4).resolved(), two, cpu)
    for options, expected in (({'batch_size': 3}, '--batch-size 3 is the global batch: it must split evenly over 2'),
                              ({'batch_size': 2}, 'leaves 1 sample per process: BatchNorm needs 2'),
                              ({'batch_size': 4, 'sync_bn': True}, "--sync-bn needs GPUs (torch's SyncBatchNorm")):
        with pytest.raises(TrainError, match=expected.replace('(', r'\(')):
            _check_world(TrainConfig(**options).resolved(), two, cpu)
