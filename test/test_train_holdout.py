"""`rtformer train --holdout-sequence`, train+val runs and the class-weighted loss."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    pytest.skip('torch is not installed', allow_module_level=True)
from PIL import Image

from rtformer_ros.cli import main as rtformer
from rtformer_ros.model import load_checkpoint
from rtformer_ros.train import TrainConfig
from rtformer_ros.train.loop import Trainer, load_data
from rtformer_ros.train.losses import cross_entropy, enet_weights, ohem_cross_entropy

SIZE = (96, 128)  # H, W
HELD_CLASS = 7  # only the held-out sequence's labels contain it, so a leak shows in any training batch
SEQUENCES = {'0001TP': (0, 1, 3), '0006R0': (HELD_CLASS,), '0016E5': (2, 3, 4)}


@pytest.fixture(scope='module')
def sequences(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CamVid's layout with three sequences of three frames in train and one 0016E5 frame in val."""
    root = tmp_path_factory.mktemp('camvid_seq')
    rng = np.random.default_rng(0)
    frames = [('train', seq, i) for seq in SEQUENCES for i in range(3)] + [('val', '0016E5', 9)]
    for split, seq, index in frames:
        for sub in (split, f'{split}annot'):
            (root / sub).mkdir(exist_ok=True)
        name = f'{seq}_{index:05d}.png'
        Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(root / split / name)
        label = rng.choice(np.asarray(SEQUENCES[seq], np.uint8), SIZE)
        Image.fromarray(label).save(root / f'{split}annot' / name)
    return root


def run(root: Path, out: Path, *options: str) -> int:
    return rtformer(['train', '--data-root', str(root), '--out', str(out), '--crop', '96x128', '--batch-size', '2',
                     '--threads', '2', '--workers', '0', '--log-every', '1', *options])


def test_no_frame_of_the_held_out_sequence_reaches_the_training_loader(sequences: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(data_root=str(sequences), holdout=('0006R0',), crop=SIZE, batch_size=2, iters=12,
                      workers=0, out=str(tmp_path)).resolved()
    data = load_data(cfg)
    assert sorted(s.image.name[:6] for s in data.train) == ['0001TP'] * 3 + ['0016E5'] * 3
    assert [s.image.name for s in data.holdout] == [f'0006R0_{i:05d}.png' for i in range(3)]
    trainer = Trainer(cfg, data, torch.device('cpu'))
    train_loader, eval_loaders = trainer._loaders()
    seen = torch.cat([labels.flatten() for _, labels in train_loader])  # 12 batches: four epochs of six frames
    assert HELD_CLASS not in seen.unique().tolist()
    assert {0, 1, 2, 3, 4} <= set(seen.unique().tolist())
    assert list(eval_loaders) == ['holdout', 'val']
    held = torch.cat([labels.flatten() for _, labels in eval_loaders['holdout']])
    assert held.unique().tolist() == [HELD_CLASS]


def test_best_checkpoint_is_chosen_on_the_held_out_sequence(sequences: Path, tmp_path: Path) -> None:
    out = tmp_path / 'run'
    assert run(sequences, out, '--holdout-sequence', '0006R0', '--iters', '4', '--val-every', '2') == 0
    with open(out / 'log.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    scored = [r for r in rows if r['holdout_miou']]
    assert [r['iter'] for r in scored] == ['2', '4']
    assert all(r['val_miou'] for r in scored)  # the val split is still scored, in its own column
    best = max(scored, key=lambda r: float(r['holdout_miou']))
    ckpt = load_checkpoint(out / 'best.pt')
    assert ckpt.extra['selected_on'] == 'holdout'
    assert ckpt.extra['holdout_miou'] == pytest.approx(float(best['holdout_miou']), rel=1e-5)
    assert ckpt.extra['holdout_sequences'] == ['0006R0']
    assert (ckpt.extra['train_images'], ckpt.extra['holdout_images'], ckpt.extra['val_images']) == (6, 3, 1)
    assert ckpt.extra['recipe']['holdout'] == ['0006R0']
    final = load_checkpoint(out / 'final.pt')
    assert final.extra['iteration'] == 4


def test_unknown_sequence_is_named(sequences: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(sequences, tmp_path / 'run', '--holdout-sequence', 'Seq05VD', '--iters', '2') == 1
    err = capsys.readouterr().err.strip()
    assert err == ('rtformer train: --holdout-sequence Seq05VD: no frame of the training or validation splits '
                   'starts with it')


def test_final_run_on_train_plus_val_without_validation(sequences: Path, tmp_path: Path) -> None:
    out = tmp_path / 'final'
    assert run(sequences, out, '--train-split', 'train+val', '--val-split', 'none', '--iters', '3',
               '--class-weight', 'enet', '--blur', '0.5', '--jitter-strength', '1.5') == 0
    assert not (out / 'best.pt').exists()  # nothing unseen to choose on: the run ships final.pt
    final = load_checkpoint(out / 'final.pt')
    assert (final.extra['train_images'], final.extra['val_images']) == (10, 0)
    assert final.extra['recipe']['class_weight'] == 'enet'


def test_enet_weights_follow_the_formula_and_favour_rare_classes() -> None:
    pixels = np.array([900, 90, 10, 0])
    weights = enet_weights(pixels)
    np.testing.assert_allclose(weights, 1 / np.log(1.02 + pixels / 1000), rtol=1e-6)
    assert list(np.argsort(weights)) == [0, 1, 2, 3]


def test_weighted_cross_entropy_matches_torch_weighted_mean() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 8, 8, generator=gen)
    target = torch.randint(0, 4, (2, 8, 8), generator=gen)
    target[0, :2] = 255
    weight = torch.tensor([0.5, 1.0, 3.0, 10.0])
    expected = F.cross_entropy(logits, target, weight=weight, ignore_index=255)
    assert cross_entropy(logits, target, weight=weight).item() == pytest.approx(expected.item(), rel=1e-6)
    # OHEM keeping every pixel is the plain weighted loss
    kept_all = ohem_cross_entropy(logits, target, thresh=1.1, min_kept=1, weight=weight)
    assert kept_all.item() == pytest.approx(expected.item(), rel=1e-6)
