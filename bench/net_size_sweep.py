"""Accuracy and cost of the network size inside an exported graph (``rtformer export --net-size``).

    rtformer bag-from-dataset -o /tmp/camvid_val --root ../shared/data/camvid --split val
    python bench/net_size_sweep.py --bag /tmp/camvid_val --json out/net_size_sweep.json --png out/net_size.png

For each network size: export the checkpoint with the camera's ``--size`` and that ``--net-size``, score it on
the bag with ``rtformer eval``'s evaluator (ONNX Runtime, the node's engine) and time the engine. Prints a
Markdown table, writes JSON and a PNG of mIoU and latency against the size. This is how the shipped CamVid
model's network size was chosen on val (models/README.md); choose on val, never on the test split.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from rtformer_ros.bags.evaluate import EvalOptions, evaluate
from rtformer_ros.commands import model_size
from rtformer_ros.export import export_checkpoint
from rtformer_ros.util import progress

REPO = Path(__file__).resolve().parents[1]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--checkpoint', type=Path, default=REPO / 'models' / 'rtformer_slim_camvid.pt')
    p.add_argument('--bag', type=Path, required=True, help='labelled bag, e.g. from rtformer bag-from-dataset')
    p.add_argument('--image-topic', default='/camera/image_raw')
    p.add_argument('--label-topic', default='/camera/labels')
    p.add_argument('--size', type=model_size, default=(360, 480), help='graph input/output HxW (the camera)')
    p.add_argument('--net-sizes', type=model_size, nargs='+',
                   default=[model_size(s) for s in ('360x480', '432x576', '480x640', '528x704', '600x800')])
    p.add_argument('--providers', default='cpu')
    p.add_argument('--json', type=Path, default=None)
    p.add_argument('--png', type=Path, default=None)
    return p.parse_args(argv)


def _plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = [r['net_size'] for r in rows]
    ax.plot(labels, [100 * r['miou'] for r in rows], 'o-', color='tab:blue')
    ax.set_xlabel('network size (HxW) inside the graph')
    ax.set_ylabel('mIoU %', color='tab:blue')
    twin = ax.twinx()
    twin.plot(labels, [r['latency_ms'] for r in rows], 's--', color='tab:red')
    twin.set_ylabel(f'engine ms ({rows[0]["provider"]})', color='tab:red')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for net in progress(args.net_sizes, desc='net sizes', unit='size'):
            model = export_checkpoint(args.checkpoint, Path(tmp) / f'{net[0]}x{net[1]}.onnx', args.size,
                                      net_size=net)
            result = evaluate(EvalOptions(bag=args.bag, image_topic=args.image_topic, label_topic=args.label_topic,
                                          model=model, providers=args.providers, samples=0, progress=False))
            ious = dict(zip(result.class_names, result.confusion.iou.tolist(), strict=True))
            rows.append({'net_size': f'{net[0]}x{net[1]}', 'pixels': net[0] * net[1] / (args.size[0] * args.size[1]),
                         'miou': result.confusion.miou, 'pixel_accuracy': result.confusion.pixel_accuracy,
                         'per_class_iou': ious,
                         'latency_ms': statistics.median(result.latencies_ms), 'frames': result.frames,
                         'provider': result.model['provider']})
    names = list(rows[0]['per_class_iou'])
    print(f'{args.checkpoint.name} on {args.bag} ({rows[0]["frames"]} frames), graph I/O '
          f'{args.size[0]}x{args.size[1]}, {rows[0]["provider"]} on {platform.processor() or platform.machine()}\n')
    print('| network size | pixels | mIoU | pixel acc | ' + ' | '.join(names) + ' | engine ms (median) |')
    print('|---|---:|---:|---:|' + '---:|' * len(names) + '---:|')
    for r in rows:
        ious = ' | '.join(f'{100 * r["per_class_iou"][n]:.1f}' for n in names)
        print(f'| {r["net_size"]} | {r["pixels"]:.2f}× | {100 * r["miou"]:.2f} | {100 * r["pixel_accuracy"]:.2f} | '
              f'{ious} | {r["latency_ms"]:.1f} |')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({'checkpoint': str(args.checkpoint), 'bag': str(args.bag), 'rows': rows},
                                        indent=1))
    if args.png:
        _plot(rows, args.png)
    return 0


if __name__ == '__main__':
    sys.exit(main())
