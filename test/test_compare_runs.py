"""`bench/compare_runs.py`: training runs side by side from the logs `rtformer train` writes (no torch needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rtformer_ros.train.history import History

SCRIPT = Path(__file__).resolve().parents[1] / 'bench' / 'compare_runs.py'


def make_run(path: Path, holdout: list[str], scores: dict[int, tuple[float, float]]) -> Path:
    """A run folder as the trainer leaves it: config.json and a log.csv written by its History."""
    path.mkdir()
    (path / 'config.json').write_text(json.dumps({'holdout': holdout}))
    history = History(path / 'log.csv', path / 'curves.png')
    history.start(None)
    for it in range(100, max(scores) + 1, 100):
        held, val = scores.get(it, (float('nan'), float('nan')))
        history.append(iter=it, loss=1.0, aux_loss=0.5, lr=1e-4, val_miou=val, holdout_miou=held, time=it * 0.4)
    return path


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_runs_are_tabled_at_the_iterations_all_of_them_validated_and_plotted(tmp_path: Path) -> None:
    a = make_run(tmp_path / 'a', ['0006R0'], {200: (0.30, 0.50), 400: (0.35, 0.60), 500: (0.36, 0.61)})
    b = make_run(tmp_path / 'b', ['0006R0'], {200: (0.32, 0.45), 400: (0.38, 0.55)})
    png = tmp_path / 'cmp.png'
    done = compare(f'recipe A={a}', str(b), '-o', str(png))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert 'held out: 0006R0' in lines
    assert '| run | metric | 200 | 400 |' in lines  # 500: only run a validated there
    assert '| recipe A | held-out mIoU | 0.300 | 0.350 |' in lines
    assert '| b | val mIoU (val split) | 0.450 | 0.550 |' in lines
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_runs_with_different_held_out_drives_or_no_log_are_refused_in_one_line(tmp_path: Path) -> None:
    a = make_run(tmp_path / 'a', ['0006R0'], {200: (0.30, 0.50)})
    b = make_run(tmp_path / 'b', ['0001TP'], {200: (0.40, 0.50)})
    done = compare(str(a), str(b))
    assert done.returncode == 1
    assert done.stderr.strip() == 'compare_runs: the runs hold out different sequences: 0001TP, 0006R0'
    done = compare(str(a), str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip() == f'compare_runs: {tmp_path}: no log.csv (not a rtformer train --out folder)'
