"""Bag tools: offline evaluation from rosbags, dataset -> bag, replay through a live node.

Subcommands of ``rtformer`` (mounted by ``rtformer_ros.cli``), each as ``add_<name>_arguments(parser)`` and
``run_<name>(args) -> int``:

- ``eval``: score a model (or predictions in the bag) against ground-truth labels; report.json/md + PNGs.
  ``--bags`` scores many bags (``--workers`` processes), ``--shard I/N`` one share of them as a part file.
- ``eval-merge``: the parts of all shards -> the report of one run over all bags.
- ``bag-from-dataset``: CamVid / Cityscapes / image+label folders -> rosbag2 (sqlite3 or mcap).
- ``replay``: play a bag into a running ``rtformer_node`` and record its outputs (needs rclpy).

Modules: ``errors`` (``BagError``), ``reader``, ``writer``, ``dataset``, ``evaluate``, ``fleet``, ``report``,
``replay``.
Importing this package is light (argparse only); the modules load when a command runs. Nothing here imports
torch: a robot with ONNX Runtime can evaluate.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from rtformer_ros.models import PROVIDER_CHOICES

if TYPE_CHECKING:
    from rtformer_ros.bags.evaluate import EvalOptions

__all__ = ['add_bag_from_dataset_arguments', 'add_eval_arguments', 'add_eval_merge_arguments', 'add_replay_arguments',
           'run_bag_from_dataset', 'run_eval', 'run_eval_merge', 'run_replay']

_STORAGES = ('sqlite3', 'mcap')


def _fail(command: str, err: Exception) -> int:
    print(f'rtformer {command}: {err}', file=sys.stderr)
    return 1


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


# ------------------------------------------------------------------------------------------------ eval

def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rtformer eval``."""
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
    parser.add_argument('--storage', choices=_STORAGES, default='sqlite3', help='storage of --write-bag')
    parser.add_argument('--providers', default='auto', help=', '.join(PROVIDER_CHOICES))
    parser.add_argument('--resize', choices=('stretch', 'letterbox'), default='stretch',
                        help='how frames are fitted to the model size (as the node parameter)')
    parser.add_argument('--samples', type=int, default=6, help='frames in samples.png')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _shard(text: str) -> tuple[int, int]:
    from rtformer_ros.bags.fleet import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run_eval(args: argparse.Namespace) -> int:
    """``rtformer eval``: score, write the report, print a summary. Exit 1 with one line on error."""
    from rtformer_ros.bags.errors import BagError
    from rtformer_ros.bags.evaluate import EvalOptions, evaluate
    from rtformer_ros.bags.report import write_report

    if args.bags is None and (args.workers != 1 or args.shard is not None):
        return _fail('eval', ValueError('--workers and --shard go with --bags'))
    opts = EvalOptions(bag=args.bag or Path(' '.join(args.bags)), label_topic=args.label_topic,
                       image_topic=args.image_topic, model=args.model, pred_topic=args.pred_topic,
                       dataset=args.dataset, ignore_index=args.ignore_index, write_bag=args.write_bag,
                       storage=args.storage, providers=args.providers, resize=args.resize, samples=args.samples,
                       progress=_progress(args))
    if args.bags is not None:
        return _run_fleet(args, opts)
    out = args.out or Path('rtformer_eval') / (args.bag.stem or 'bag')
    try:
        result = evaluate(opts)
        report = write_report(result, out)
    except BagError as err:
        return _fail('eval', err)
    _summary(str(args.bag), report, out)
    if args.write_bag is not None:
        print(f'bag: {args.write_bag}')
    return 0


def _run_fleet(args: argparse.Namespace, opts: EvalOptions) -> int:
    """``eval --bags``: score bag by bag; the report, or with ``--shard`` the part file."""
    from rtformer_ros.bags.errors import BagError
    from rtformer_ros.bags.evaluate import check_options
    from rtformer_ros.bags.fleet import Shard, find_bags, merge_parts, score_bags, shard_indices, write_shard
    from rtformer_ros.bags.report import write_report

    if args.write_bag is not None:
        return _fail('eval', ValueError('--write-bag goes with --bag (one bag), not --bags'))
    if args.workers < 1:
        return _fail('eval', ValueError(f'--workers {args.workers}: give 1 or more'))
    try:
        check_options(opts)
        listing = find_bags(args.bags)
        index, count = args.shard or (0, 1)
        mine = shard_indices([size for _, size in listing], index, count)
        parts = list(score_bags(opts, listing, mine, args.workers, opts.progress))
    except BagError as err:
        return _fail('eval', err)
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
    try:
        report = write_report(merge_parts(opts, parts, opts.samples), out)
    except BagError as err:
        return _fail('eval', err)
    _summary(f'{len(listing)} bags ({len(failed)} not scored)', report, out)
    return 0


def add_eval_merge_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rtformer eval-merge``."""
    parser.add_argument('parts', nargs='+', type=Path, metavar='PART',
                        help='part files of rtformer eval --shard, or folders holding them (part-*.json)')
    parser.add_argument('--out', type=Path, default=Path('rtformer_eval') / 'merged',
                        help='report folder (default rtformer_eval/merged)')


def run_eval_merge(args: argparse.Namespace) -> int:
    """``rtformer eval-merge``: check the shards belong together and cover the run; write the usual report."""
    from rtformer_ros.bags.errors import BagError
    from rtformer_ros.bags.evaluate import EvalOptions
    from rtformer_ros.bags.fleet import merge_parts, read_shards
    from rtformer_ros.bags.report import write_report

    try:
        shards = read_shards(args.parts)
        setup = shards[0].setup
        model = next((part.model['path'] for shard in shards for part in shard.parts if part.model), None)
        opts = EvalOptions(bag=Path(' '.join(setup['bags'])), label_topic=setup['label_topic'],
                           image_topic=setup['image_topic'], pred_topic=setup['pred_topic'],
                           model=None if model is None else Path(model), dataset=setup['dataset'],
                           ignore_index=setup['ignore_index'], resize=setup['resize'], samples=setup['samples'])
        parts = [part for shard in shards for part in shard.parts]
        report = write_report(merge_parts(opts, parts, setup['samples']), args.out)
    except BagError as err:
        return _fail('eval-merge', err)
    failed = sum(1 for part in parts if part.error)
    _summary(f'{len(shards)} shards, {len(parts)} bags ({failed} not scored)', report, args.out)
    return 0


def _summary(source: str, report: dict, out: Path) -> None:
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


# ------------------------------------------------------------------------------------------------ bag-from-dataset

def _seconds(text: str) -> int:
    """Epoch seconds (decimal) -> ns, exactly (a float loses the nanoseconds of today's epoch times)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text} is negative')
    return int(value * 1_000_000_000)


def add_bag_from_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rtformer bag-from-dataset``."""
    parser.add_argument('-o', '--output', type=Path, required=True, help='new bag folder (must not exist)')
    parser.add_argument('--root', type=Path, help='dataset root: CamVid (<split>/, <split>annot/) or Cityscapes '
                                                  '(leftImg8bit/, gtFine/ with *_labelTrainIds.png)')
    parser.add_argument('--layout', choices=('auto', 'camvid', 'cityscapes'), default='auto')
    parser.add_argument('--split', default='val')
    parser.add_argument('--images', type=Path, help='image folder (instead of --root), paired with --labels by name')
    parser.add_argument('--labels', type=Path, help='label folder: 8-bit PNGs of class ids')
    parser.add_argument('--void', type=int, default=None,
                        help='label id written as 255 (ignore); CamVid: 11 automatically')
    parser.add_argument('--storage', choices=_STORAGES, default='sqlite3')
    parser.add_argument('--compressed', action='store_true', help='images as JPEG CompressedImage (not bgr8 Image)')
    parser.add_argument('--jpeg-quality', type=int, default=95)
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second (default 10)')
    parser.add_argument('--start', type=_seconds, default=None,
                        help='first stamp in epoch seconds (default 1700000000)')
    parser.add_argument('--frame-id', default='camera')
    parser.add_argument('--image-topic', default=None,
                        help='default /camera/image_raw (/camera/image_raw/compressed with --compressed)')
    parser.add_argument('--label-topic', default='/camera/labels')
    parser.add_argument('--sequence', action='append', metavar='SEQ',
                        help='only frames whose file name starts with SEQ, e.g. the CamVid sequence held out of '
                             'training with rtformer train --holdout-sequence (repeatable)')
    parser.add_argument('--limit', type=int, default=0, help='first N frames only (0: all)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_bag_from_dataset(args: argparse.Namespace) -> int:
    """``rtformer bag-from-dataset``: write the bag, print what it holds."""
    from rtformer_ros.bags.dataset import DEFAULT_START_NS, find_samples, write_dataset_bag
    from rtformer_ros.bags.errors import BagError

    image_topic = args.image_topic or ('/camera/image_raw/compressed' if args.compressed else '/camera/image_raw')
    try:
        samples, void = find_samples(args.root, args.split, args.layout, args.images, args.labels)
        if args.sequence:
            samples = [s for s in samples if s.image.name.startswith(tuple(args.sequence))]
            if not samples:
                msg = f'--sequence {" ".join(args.sequence)}: no frame of the dataset starts with it'
                raise BagError(msg)
        if args.limit > 0:
            samples = samples[:args.limit]
        summary = write_dataset_bag(
            samples, args.output, void=args.void if args.void is not None else void, storage=args.storage,
            compressed=args.compressed, jpeg_quality=args.jpeg_quality, rate_hz=args.rate,
            start_ns=DEFAULT_START_NS if args.start is None else args.start,
            frame_id=args.frame_id, image_topic=image_topic, label_topic=args.label_topic,
            progress=_progress(args))
    except BagError as err:
        return _fail('bag-from-dataset', err)
    print(f'{summary.path}: {summary.frames} frames on {summary.image_topic} and {summary.label_topic} '
          f'({args.storage}, {args.rate:g} Hz)')
    return 0


# ------------------------------------------------------------------------------------------------ replay

def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rtformer replay``."""
    parser.add_argument('--bag', type=Path, required=True, help='input rosbag2')
    parser.add_argument('-o', '--output', type=Path, required=True, help='new bag with the node outputs')
    parser.add_argument('--image-topic', required=True, help='camera topic in the bag (Image or CompressedImage)')
    parser.add_argument('--label-topic', help='ground-truth topic copied into the output bag')
    parser.add_argument('--publish-topic', help='publish frames here (default: --image-topic)')
    parser.add_argument('--pred-topic', help="the node's labels (default: <namespace>/segmentation/labels of the "
                                             'published topic)')
    parser.add_argument('--record', action='append', default=[], metavar='TOPIC',
                        help='also record this Image topic of the node (repeatable), e.g. .../segmentation/color')
    parser.add_argument('--storage', choices=_STORAGES, default='sqlite3')
    parser.add_argument('--rate', type=float, default=1.0, help='speed factor on the bag timing (default 1)')
    parser.add_argument('--lockstep', action='store_true',
                        help='send a frame, wait for its labels (by stamp), then the next: every frame is scored')
    parser.add_argument('--timeout', type=float, default=10.0,
                        help='s: lockstep wait per frame; otherwise the wait for the last outputs (default 10)')
    parser.add_argument('--wait', type=float, default=20.0, help='s to wait for the node to appear (default 20)')
    parser.add_argument('--limit', type=int, default=0, help='first N frames only (0: all)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_replay(args: argparse.Namespace) -> int:
    """``rtformer replay``: play, record, print how many frames came back and how to score them."""
    from rtformer_ros.bags.errors import BagError
    from rtformer_ros.bags.replay import ReplayOptions, replay

    opts = ReplayOptions(bag=args.bag, output=args.output, image_topic=args.image_topic,
                         label_topic=args.label_topic, publish_topic=args.publish_topic, pred_topic=args.pred_topic,
                         record=tuple(args.record), storage=args.storage, rate=args.rate, lockstep=args.lockstep,
                         timeout_s=args.timeout, wait_s=args.wait, limit=args.limit, progress=_progress(args))
    try:
        summary = replay(opts)
    except BagError as err:
        return _fail('replay', err)
    print(f'{summary.output}: {summary.published} frames sent, labels for {summary.answered} '
          f'({len(summary.missed)} missed) in {summary.wall_s:.1f} s')
    if not summary.answered:
        print(f'rtformer replay: no labels came back on {summary.pred_topic}', file=sys.stderr)
        return 1
    if args.label_topic:
        print(f'score: rtformer eval --bag {summary.output} --label-topic {args.label_topic} '
              f'--pred-topic {summary.pred_topic} --image-topic {args.image_topic} --model <model.onnx>')
    return 0
