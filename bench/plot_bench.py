"""Bar chart of `rtformer bench --json` runs: median ms per row, one bar group per row, one bar per run.

    python bench/plot_bench.py out/bench/run1.json out/bench/run2.json -o docs/img/cpu_precisions.png \\
        --title "Shipped CamVid model, 2-core EPYC (loaded)"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('runs', nargs='+', type=Path, help='JSON files written by rtformer bench --json')
    p.add_argument('-o', '--out', type=Path, required=True)
    p.add_argument('--title', default='rtformer bench')
    args = p.parse_args()
    runs = [json.loads(path.read_text())['rows'] for path in args.runs]
    labels = [f'{r["variant"]}\n{r["backend"]} ({r["precision"]})' for r in runs[0]]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.5))
    height = 0.8 / len(runs)
    for i, rows in enumerate(runs):
        ax.barh([y + i * height for y in range(len(rows))], [r['median_ms'] for r in rows], height=height,
                label=f'run {i + 1}')
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel('median ms per frame (lower is better)')
    ax.set_title(args.title)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
