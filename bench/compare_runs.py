"""Training runs side by side: held-out and val mIoU per validated iteration, as a Markdown table and a PNG.

    python bench/compare_runs.py "shipped recipe=~/.cache/rtformer_ros/train/slimA_hold0006" \\
        "previous recipe=~/.cache/rtformer_ros/train/slimB_hold0006_prev" -o docs/img/ablation_hold0006.png

Each RUN is a `rtformer train --out` folder (its log.csv; config.json names the held-out sequences), optionally
prefixed with ``LABEL=``. Runs compared this way should share the schedule: a poly learning rate makes iteration
4,000 of an 8,000-iteration run a different point from the end of a 4,000-iteration one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rtformer_ros.train.history import read_log

METRICS = (('holdout_miou', 'held-out mIoU'), ('val_miou', 'val mIoU (val split)'))


def parse_run(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.rpartition('=')
    run = Path(path).expanduser()
    if not (run / 'log.csv').is_file():
        raise SystemExit(f'compare_runs: {run}: no log.csv (not a rtformer train --out folder)')
    return (label if sep else run.name), run


def table(runs: dict[str, list[dict[str, float]]]) -> str:
    """One row per run and metric, one column per iteration that every run validated at (the plot has all).
    No wall time: runs that shared the machine log a wall clock that is not their cost."""
    validated = [
        {int(r['iter']) for r in rows if any(not math.isnan(r[k]) for k, _ in METRICS)} for rows in runs.values()
    ]
    iters = sorted(set.intersection(*validated))
    lines = ['| run | metric | ' + ' | '.join(f'{i:,}' for i in iters) + ' |', '|---|---|' + '---:|' * len(iters)]
    for label, rows in runs.items():
        by_iter = {int(r['iter']): r for r in rows}
        for key, name in METRICS:
            cells = [by_iter.get(i, {}).get(key, math.nan) for i in iters]
            if all(math.isnan(c) for c in cells):
                continue
            scores = ' | '.join('' if math.isnan(c) else f'{c:.3f}' for c in cells)
            lines.append(f'| {label} | {name} | {scores} |')
    return '\n'.join(lines)


def plot(runs: dict[str, list[dict[str, float]]], held_out: str, out: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    for ax, (key, name) in zip(fig.subplots(1, 2), METRICS, strict=True):
        for label, rows in runs.items():
            points = [(r['iter'], r[key]) for r in rows if not math.isnan(r[key])]
            if points:
                ax.plot(*zip(*points, strict=True), marker='o', label=label)
        ax.set(title=f'{name} ({held_out})' if key == 'holdout_miou' else name, xlabel='iteration', ylabel='mIoU')
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('runs', nargs='+', metavar='[LABEL=]RUN', help='rtformer train --out folders')
    p.add_argument('-o', '--out', type=Path, help='PNG to write (default: the table only)')
    p.add_argument('--title', default='training runs compared')
    args = p.parse_args(argv)
    specs = [parse_run(spec) for spec in args.runs]
    runs = {label: read_log(run / 'log.csv') for label, run in specs}
    held = {
        '+'.join(json.loads((run / 'config.json').read_text()).get('holdout') or ()) or 'none'
        for _, run in specs
        if (run / 'config.json').is_file()
    }
    if len(held) > 1:  # different held-out drives are different yardsticks: never one table
        sys.exit(f'compare_runs: the runs hold out different sequences: {", ".join(sorted(held))}')
    held_out = next(iter(held), 'none')
    print(f'held out: {held_out}\n')
    print(table(runs))
    if args.out:
        plot(runs, held_out, args.out, args.title)
        print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
