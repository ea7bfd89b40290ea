"""`rtformer train` end to end on CPU: it learns, logs, keeps the best checkpoint and resumes exactly."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

try:  # dev-only (requirements-dev.txt): absent on robots, skipped there
    import torch
except ImportError:
    pytest.skip('torch is not installed', allow_module_level=True)
from PIL import Image

from rtformer_ros.cli import main as rtformer
from rtformer_ros.model import load_checkpoint
from rtformer_ros.train import TrainConfigError, add_arguments, config_from_args

SIZE = (160, 128)  # PIL (W, H): small frames keep a Slim step well under a second on CPU


@pytest.fixture(scope='module')
def camvid4(camvid_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four CamVid training and validation frames, downscaled to 128x160, in CamVid's layout."""
    root = tmp_path_factory.mktemp('camvid4')
    for split in ('train', 'val'):
        for sub in (split, f'{split}annot'):
            (root / sub).mkdir()
        for path in sorted((camvid_dir / split).glob('*.png'))[:4]:
            Image.open(path).resize(SIZE, Image.BILINEAR).save(root / split / path.name)
            label = Image.open(camvid_dir / f'{split}annot' / path.name)
            label.resize(SIZE, Image.NEAREST).save(root / f'{split}annot' / path.name)
    return root


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / 'log.csv', newline='') as f:
        return list(csv.DictReader(f))


def train(root: Path, out: Path, *options: str) -> None:
    argv = ['--data-root', str(root), '--out', str(out), '--threads', '2', '--log-every', '1', *options]
    assert rtformer(['train', *argv]) == 0


@pytest.fixture(scope='module')
def overfit_run(camvid4: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 steps of Slim on the four frames, augmentation off so the net can memorise them."""
    out = tmp_path_factory.mktemp('runs') / 'overfit'
    train(camvid4, out, '--crop', '128x160', '--batch-size', '4', '--iters', '20', '--val-every', '10',
          '--scale-range', '1', '1', '0.25', '--no-flip', '--no-jitter', '--workers', '0')
    return out


def test_overfit_on_four_frames_halves_the_loss(overfit_run: Path) -> None:
    losses = [float(r['loss']) for r in read_rows(overfit_run)]
    assert len(losses) == 20
    assert np.mean(losses[-3:]) < 0.5 * losses[0], losses


def test_run_writes_log_csv_and_curves_png(overfit_run: Path) -> None:
    rows = read_rows(overfit_run)
    assert list(rows[0]) == ['iter', 'loss', 'aux_loss', 'lr', 'val_miou', 'holdout_miou', 'time']
    assert [int(r['iter']) for r in rows] == list(range(1, 21))
    assert [r['iter'] for r in rows if r['val_miou']] == ['10', '20']
    assert float(rows[0]['lr']) == pytest.approx(1e-6)  # warm-up: round(5 % of 20) = 1 iteration
    assert float(rows[1]['lr']) == pytest.approx(4e-4)
    times = [float(r['time']) for r in rows]
    assert times == sorted(times) and times[0] > 0
    png = overfit_run / 'curves.png'
    with Image.open(png) as img:
        assert img.format == 'PNG' and img.width >= 600


def test_best_checkpoint_is_self_describing(overfit_run: Path) -> None:
    rows = [r for r in read_rows(overfit_run) if r['val_miou']]
    best = max(rows, key=lambda r: float(r['val_miou']))
    ckpt = load_checkpoint(overfit_run / 'best.pt')
    assert ckpt.classes.name == 'camvid' and ckpt.model.cfg.num_classes == 11
    assert ckpt.extra['iteration'] == int(best['iter'])
    assert ckpt.extra['val_miou'] == pytest.approx(float(best['val_miou']), rel=1e-5)
    assert ckpt.extra['recipe']['lr'] == 4e-4 and ckpt.extra['recipe']['crop'] == [128, 160]
    assert set(ckpt.extra['per_class_iou']) == set(ckpt.classes.names)
    assert 0 < ckpt.extra['val_miou'] <= 1
    assert ckpt.model.cfg.bn_momentum == 0.1


def test_new_run_refuses_a_directory_holding_a_run(overfit_run: Path, camvid4: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert rtformer(['train', '--data-root', str(camvid4), '--out', str(overfit_run), '--iters', '5']) == 1
    assert 'holds a run already (last.pt); add --resume' in capsys.readouterr().err


def test_resume_refuses_a_changed_recipe_but_takes_runtime_options(overfit_run: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(TrainConfigError, match=r'--lr 0\.001 \(saved 0\.0004\)'):
        config_from_args(parser.parse_args(['--out', str(overfit_run), '--resume', '--lr', '1e-3']))
    cfg = config_from_args(parser.parse_args(['--out', str(overfit_run), '--resume', '--workers', '3']))
    assert cfg.workers == 3 and cfg.iters == 20 and cfg.crop == (128, 160) and not cfg.flip


def test_resume_continues_bit_for_bit(camvid4: Path, tmp_path: Path) -> None:
    # Augmentation on (scale, crop, flip, jitter) and drop-path on: every random draw must be restored.
    recipe = ('--crop', '96x128', '--batch-size', '2', '--iters', '6', '--val-every', '3')
    train(camvid4, tmp_path / 'straight', *recipe, '--workers', '0')
    train(camvid4, tmp_path / 'split', *recipe, '--workers', '0', '--stop-at', '3')
    assert [r['iter'] for r in read_rows(tmp_path / 'split')] == ['1', '2', '3']
    # The data order and augmentation come from per-sample seeds, so a loader worker changes nothing.
    train(camvid4, tmp_path / 'split', '--resume', '--workers', '1')

    def strip_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != 'time'} for r in rows]

    straight, split = read_rows(tmp_path / 'straight'), read_rows(tmp_path / 'split')
    assert strip_time(split) == strip_time(straight)
    assert [int(r['iter']) for r in split] == list(range(1, 7))
    a = torch.load(tmp_path / 'straight' / 'last.pt', weights_only=True)
    b = torch.load(tmp_path / 'split' / 'last.pt', weights_only=True)
    assert a['iteration'] == b['iteration'] == 6
    assert a['scheduler']['last_epoch'] == b['scheduler']['last_epoch'] == 6
    assert all(torch.equal(a['model'][k], b['model'][k]) for k in a['model'])
    moments = [(s['exp_avg'], t['exp_avg']) for s, t in zip(a['optimizer']['state'].values(),
                                                             b['optimizer']['state'].values(), strict=True)]
    assert all(torch.equal(x, y) for x, y in moments)


def test_init_copies_matching_tensors_and_leaves_the_class_layers_fresh(tmp_path: Path) -> None:
    from rtformer_ros.classes import get_classes
    from rtformer_ros.model import build_rtformer, save_checkpoint
    from rtformer_ros.train.loop import init_weights_from

    source = build_rtformer('slim_cityscapes')
    path = save_checkpoint(tmp_path / 'city.pt', source, get_classes('cityscapes'))
    model = build_rtformer('slim_camvid')
    loaded, fresh = init_weights_from(model, path)
    assert fresh == ['seghead.conv2.bias', 'seghead.conv2.weight', 'seghead_extra.conv2.bias',
                     'seghead_extra.conv2.weight']
    assert loaded == len(model.state_dict()) - 4
    assert torch.equal(model.layer5.attn_l.k, source.layer5.attn_l.k)


def test_val_scale_scores_the_network_on_scaled_frames_at_label_size(overfit_run: Path, camvid4: Path,
                                                                     tmp_path: Path) -> None:
    from rtformer_ros.classes import IGNORE_INDEX
    from rtformer_ros.metadata import IMAGENET_MEAN, IMAGENET_STD
    from rtformer_ros.metrics import ConfusionMatrix

    out = tmp_path / 'scaled'
    train(camvid4, out, '--init', str(overfit_run / 'best.pt'), '--crop', '128x160', '--batch-size', '2',
          '--iters', '1', '--lr', '1e-9', '--workers', '0', '--val-scale', '1.5')
    ckpt = load_checkpoint(out / 'best.pt')
    assert ckpt.extra['recipe']['val_scale'] == 1.5
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    scores = {}
    for scale in (1.0, 1.5):
        matrix = ConfusionMatrix(11, IGNORE_INDEX)
        for path in sorted((camvid4 / 'val').glob('*.png')):
            rgb = torch.from_numpy(np.array(Image.open(path).convert('RGB'))).permute(2, 0, 1)[None]
            x = (rgb.float() / 255 - mean) / std
            label = np.asarray(Image.open(camvid4 / 'valannot' / path.name)).copy()
            label[label == 11] = IGNORE_INDEX
            with torch.no_grad():
                scaled = torch.nn.functional.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)
                pred = ckpt.model(scaled, out_size=label.shape).argmax(1)[0].to(torch.uint8).numpy()
            matrix.update(label, pred)
        scores[scale] = matrix.miou
    assert ckpt.extra['val_miou'] == pytest.approx(scores[1.5], abs=1e-6)
    assert scores[1.5] != scores[1.0]
