"""The run's log: ``log.csv`` rows and the ``curves.png`` drawn from them (matplotlib, Agg canvas, no pyplot)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ['FIELDS', 'History', 'plot_curves', 'read_log']

FIELDS = ('iter', 'loss', 'aux_loss', 'lr', 'val_miou', 'holdout_miou', 'time')
"""Columns: iteration done; mean total loss and aux-head loss over the rows' window; backbone learning rate;
mIoU on the val split and on the held-out sequences (empty when not evaluated); wall seconds since the run began
(summed over resumes)."""


def read_log(path: Path) -> list[dict[str, float]]:
    """Rows of a ``log.csv`` with every column of `FIELDS`; empty or absent cells (older logs) become NaN."""
    if not Path(path).is_file():
        return []
    with open(path, newline='') as f:
        return [{k: float(row[k]) if row.get(k) not in ('', None) else math.nan for k in FIELDS}
                for row in csv.DictReader(f)]


class History:
    """Appends rows to ``log.csv`` and redraws ``curves.png`` from the whole file."""

    def __init__(self, csv_path: Path, png_path: Path) -> None:
        self.csv_path, self.png_path = Path(csv_path), Path(png_path)

    def start(self, resume_at: int | None) -> None:
        """New run: write the header. Resumed run: drop rows after the checkpoint's iteration (a crash may have
        logged past it) and keep the rest."""
        rows = [r for r in read_log(self.csv_path) if r['iter'] <= resume_at] if resume_at is not None else []
        with open(self.csv_path, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(FIELDS)
            writer.writerows([_cells(r) for r in rows])

    def append(self, **row: float) -> None:
        with open(self.csv_path, 'a', newline='') as f:
            csv.writer(f).writerow(_cells(row))

    def plot(self) -> None:
        plot_curves(self.csv_path, self.png_path)


def _cells(row: dict[str, float]) -> list[str]:
    cells = []
    for key in FIELDS:
        value = row.get(key, math.nan)
        if value is None or math.isnan(value):
            cells.append('')
        elif key == 'iter':
            cells.append(str(int(value)))
        elif key == 'time':
            cells.append(f'{value:.1f}')
        else:
            cells.append(f'{value:.6g}')
    return cells


def plot_curves(csv_path: Path, png_path: Path) -> Path:
    """Loss, learning rate and validation mIoU against iterations, as one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_log(csv_path)
    fig = Figure(figsize=(10, 3.2), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    ax_loss, ax_lr, ax_miou = fig.subplots(1, 3)

    def series(key: str) -> tuple[list[float], list[float]]:
        points = [(r['iter'], r[key]) for r in rows if not math.isnan(r[key])]
        return [p[0] for p in points], [p[1] for p in points]

    ax_loss.plot(*series('loss'), label='total')
    ax_loss.plot(*series('aux_loss'), label='aux head')
    ax_loss.set(title='training loss', xlabel='iteration')
    ax_loss.legend()
    ax_lr.plot(*series('lr'))
    ax_lr.set(title='learning rate (backbone)', xlabel='iteration')
    ax_lr.ticklabel_format(axis='y', style='sci', scilimits=(0, 0))
    for key, label in (('holdout_miou', 'held-out sequence'), ('val_miou', 'val split')):
        if any(not math.isnan(r[key]) for r in rows):
            ax_miou.plot(*series(key), marker='o', label=label)
    ax_miou.set(title='validation mIoU', xlabel='iteration', ylim=(0, 1))
    if ax_miou.lines:
        ax_miou.legend()
    for ax in (ax_loss, ax_lr, ax_miou):
        ax.grid(alpha=0.3)
    fig.savefig(png_path)
    return Path(png_path)
