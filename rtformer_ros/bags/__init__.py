"""Bag tools: offline evaluation from rosbags, dataset -> bag, replay through a live node.

Subcommands of ``rtformer`` (mounted by ``rtformer_ros.cli``), each as ``add_<name>_arguments(parser)`` and
``run_<name>(args) -> int``:

- ``eval``: score a model (or predictions in the bag) against ground-truth labels; report.json/md + PNGs.
- ``bag-from-dataset``: CamVid / Cityscapes / image+label folders -> rosbag2 (sqlite3 or mcap).
- ``replay``: play a bag into a running ``rtformer_node`` and record its outputs (needs rclpy).

Modules: ``errors`` (``BagError``), ``reader``, ``writer``, ``dataset``, ``evaluate``, ``report``, ``replay``.
Importing this package is light (argparse only); the modules load when a command runs. Nothing here imports
torch: a robot with ONNX Runtime can evaluate.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

__all__ = ['add_bag_from_dataset_arguments', 'add_eval_arguments', 'add_replay_arguments', 'run_bag_from_dataset',
           'run_eval', 'run_replay']

_STORAGES = ('sqlite3', 'mcap')


def _fail(command: str, err: Exception) -> int:
    print(f'rtformer {command}: {err}', file=sys.stderr)
    return 1


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


# ------------------------------------------------------------------------------------------------ eval

def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rtformer eval``."""
    parser.add_argument('--bag', type=Path, required=True, help='rosbag2 folder (sqlite3 or mcap) or .db3/.mcap file')
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
                        help='report folder (default: rtformer_eval/<bag name>)')
    parser.add_argument('--write-bag', type=Path, default=None,
                        help='new bag: the image topic plus <namespace>/segmentation/labels|color|overlay')
    parser.add_argument('--storage', choices=_STORAGES, default='sqlite3', help='storage of --write-bag')
    parser.add_argument('--providers', default='auto', help='ONNX Runtime: auto, cpu, cuda, tensorrt')
    parser.add_argument('--resize', choices=('stretch', 'letterbox'), default='stretch',
                        help='how frames are fitted to the model size (as the node parameter)')
    parser.add_argument('--samples', type=int, default=6, help='frames in samples.png')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_eval(args: argparse.Namespace) -> int:
    """``rtformer eval``: score, write the report, print a summary. Exit 1 with one line on error."""
    from rtformer_ros.bags.errors import BagError
    from rtformer_ros.bags.evaluate import EvalOptions, evaluate
    from rtformer_ros.bags.report import write_report

    opts = EvalOptions(bag=args.bag, label_topic=args.label_topic, image_topic=args.image_topic, model=args.model,
                       pred_topic=args.pred_topic, dataset=args.dataset, ignore_index=args.ignore_index,
                       write_bag=args.write_bag, storage=args.storage, providers=args.providers,
                       resize=args.resize, samples=args.samples, progress=_progress(args))
    out = args.out or Path('rtformer_eval') / (args.bag.stem or 'bag')
    try:
        result = evaluate(opts)
        report = write_report(result, out)
    except BagError as err:
        return _fail('eval', err)

    def pct(value: float | None) -> str:
        return 'n/a' if value is None else f'{value * 100:.2f} %'

    lat = report['latency_ms']
    print(f'{args.bag}: {report["frames"]} frames scored ({report["unpaired"]} unpaired messages, '
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
    if args.write_bag is not None:
        print(f'bag: {args.write_bag}')
    return 0


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
    parser.add_argument('--limit', type=int, default=0, help='first N frames only (0: all)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_bag_from_dataset(args: argparse.Namespace) -> int:
    """``rtformer bag-from-dataset``: write the bag, print what it holds."""
    from rtformer_ros.bags.dataset import DEFAULT_START_NS, find_samples, write_dataset_bag
    from rtformer_ros.bags.errors import BagError

    image_topic = args.image_topic or ('/camera/image_raw/compressed' if args.compressed else '/camera/image_raw')
    try:
        samples, void = find_samples(args.root, args.split, args.layout, args.images, args.labels)
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
