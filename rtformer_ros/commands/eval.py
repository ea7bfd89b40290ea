"""``rtformer eval``: score a model (or predictions recorded in the bag) against ground-truth labels in rosbags.

``--bag`` scores one bag; ``--bags`` many (``--workers`` processes), ``--shard I/N`` one share of them as a part
file for ``rtformer eval-merge``. Writes report.json/md and PNGs (`rtformer_ros.bags.report`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rtformer_ros.commands import STORAGES, add_progress
from rtformer_ros.models import PROVIDER_CHOICES

if TYPE_CHECKING:
    from rtformer_ros.bags.evaluate import EvalOptions

__all__ = ['HELP', 'NAME', 'add_arguments', 'print_summary', 'run']

NAME = 'eval'
HELP = 'score a model (or recorded predictions) on a rosbag2 with ground-truth labels'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--bag', type=Path, help='rosbag2 folder (sqlite3 or mcap) or .db3/.mcap file')
    source.add_argument('--bags', nargs='+', metavar='DIR_OR_GLOB',
                        help='many bags: folders searched for bags, globs (quoted), or bags; one report over all, '
                             'with a line per bag')
    parser.add_argument('--label-topic', required=True, help='ground truth: mono8 Image of class ids')
    parser.add_argument('--image-topic', help='camera: Image (any encoding) or CompressedImage (jpeg/png); '
                                              'needed to run the model, optional with --pred-topic')
    parser.add_argument('--model', type=Path, help='exported .onnx; optional with --pred-topic (class names)')
    parser.add_argument('--pred-topic', help='score predictions already in the bag (mono8, e.g. recorded '
                                             '.../segmentation/labels) instead of running the model')
    parser.add_argument('--dataset', help='class names without --model (camvid, cityscapes, ...); default: '
                                          'generic names, count from the ids seen')
    parser.add_argument('--ignore-index', type=int, default=None,
                        help="label id that is not scored (default: the model's, 255)")
    parser.add_argument('--out', type=Path, default=None,
                        help='report folder (default: rtformer_eval/<bag name>, rtformer_eval/fleet with --bags); '
                             'with --shard the folder of the part file (default rtformer_eval/parts), or the '
                             'file itself (*.json)')
    parser.add_argument('--workers', type=int, default=1, help='with --bags: bags scored in N local processes')
    parser.add_argument('--shard', type=_shard, default=None, metavar='I/N',
                        help='with --bags: score share I of N (0-based) and write part-I-of-N.json for '
                             'rtformer eval-merge')
    parser.add_argument('--write-bag', type=Path, default=None,
                        help='new bag: the image topic plus <namespace>/segmentation/labels|color|overlay')
    parser.add_argument('--storage', choices=STORAGES, default='sqlite3', help='storage of --write-bag')
    parser.add_argument('--providers', default='auto', help=', '.join(PROVIDER_CHOICES))
    parser.add_argument('--resize', choices=('stretch', 'letterbox'), default='stretch',
                        help='how frames are fitted to the model size (as the node parameter)')
    parser.add_argument('--samples', type=int, default=6, help='frames in samples.png')
    add_progress(parser)


def _shard(text: str) -> tuple[int, int]:
    from rtformer_ros.bags.fleet import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from rtformer_ros.bags import BagError
    from rtformer_ros.bags.evaluate import EvalOptions, evaluate
    from rtformer_ros.bags.report import write_report

    if args.bags is None and (args.workers != 1 or args.shard is not None):
        raise BagError('--workers and --shard go with --bags')
    opts = EvalOptions(bag=args.bag or Path(' '.join(args.bags)), label_topic=args.label_topic,
                       image_topic=args.image_topic, model=args.model, pred_topic=args.pred_topic,
                       dataset=args.dataset, ignore_index=args.ignore_index, write_bag=args.write_bag,
                       storage=args.storage, providers=args.providers, resize=args.resize, samples=args.samples,
                       progress=args.progress)
    if args.bags is not None:
        return _run_fleet(args, opts)
    out = args.out or Path('rtformer_eval') / (args.bag.stem or 'bag')
    print_summary(str(args.bag), write_report(evaluate(opts), out), out)
    if args.write_bag is not None:
        print(f'bag: {args.write_bag}')
    return 0


def _run_fleet(args: argparse.Namespace, opts: EvalOptions) -> int:
    """``eval --bags``: score bag by bag; the report, or with ``--shard`` the part file."""
    from rtformer_ros.bags import BagError
    from rtformer_ros.bags.evaluate import check_options
    from rtformer_ros.bags.fleet import Shard, find_bags, merge_parts, score_bags, shard_indices, write_shard
    from rtformer_ros.bags.report import write_report

    if args.write_bag is not None:
        raise BagError('--write-bag goes with --bag (one bag), not --bags')
    if args.workers < 1:
        raise BagError(f'--workers {args.workers}: give 1 or more')
    check_options(opts)
    listing = find_bags(args.bags)
    index, count = args.shard or (0, 1)
    mine = shard_indices([size for _, size in listing], index, count)
    parts = list(score_bags(opts, listing, mine, args.workers, opts.progress))
    failed = [part for part in sorted(parts, key=lambda p: p.index) if part.error]
    for part in failed:
        print(f'rtformer eval: bag not scored: {part.error}', file=sys.stderr)
    if args.shard is not None:
        shard = Shard(args.shard, listing, Shard.setup_of(opts, args.bags), parts)
        path = write_shard(shard, args.out or Path('rtformer_eval') / 'parts')
        frames = sum(part.frames for part in parts)
        print(f'shard {index}/{count}: {len(parts)} of {len(listing)} bags, {frames} frames scored, '
              f'{len(failed)} bags failed; part: {path}')
        # The part records its failed bags; a non-zero exit would only stop the scheduler's merge step
        # (Slurm afterok, a Job's completion) for what eval-merge reports anyway.
        return 0
    out = args.out or Path('rtformer_eval') / 'fleet'
    report = write_report(merge_parts(opts, parts, opts.samples), out)
    print_summary(f'{len(listing)} bags ({len(failed)} not scored)', report, out)
    return 0


def print_summary(source: str, report: dict, out: Path) -> None:
    """The scores of a report in a few lines (eval, eval-merge)."""
    def pct(value: float | None) -> str:
        return 'n/a' if value is None else f'{value * 100:.2f} %'

    lat = report['latency_ms']
    print(f'{source}: {report["frames"]} frames scored ({report["unpaired"]} unpaired messages, '
          f'{report["skipped"]} skipped)')
    print(f'mIoU {pct(report["miou"])}, pixel accuracy {pct(report["pixel_accuracy"])}, '
          f'fwIoU {pct(report["fw_iou"])}')
    if lat['p50'] is not None:
        print(f'latency p50 {lat["p50"]:.1f} ms, p95 {lat["p95"]:.1f} ms, p99 {lat["p99"]:.1f} ms; '
              f'{report["throughput_fps"]:.1f} FPS engine, {report["wall_fps"]:.1f} FPS overall')
    if report['confidence'] is not None:
        conf = report['confidence']
        print(f'confidence: mean {conf["mean"]:.3f}, share under {conf["threshold"]} {conf["low_share"]:.3f}; '
              f'node band: {" ".join(f"{k}:={v}" for k, v in conf["ood_band"].items())}')
    print(f'report: {out / "report.md"}')
