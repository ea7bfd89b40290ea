"""``rtformer bag-from-dataset``: CamVid / Cityscapes / image+label folders -> a rosbag2 (sqlite3 or mcap)."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from pathlib import Path

from rtformer_ros.commands import STORAGES, add_progress
from rtformer_ros.util import NS_PER_S

__all__ = ['HELP', 'NAME', 'add_arguments', 'run']

NAME = 'bag-from-dataset'
HELP = 'write a rosbag2 (sqlite3/mcap) of images + labels from a dataset'


def _seconds(text: str) -> int:
    """Epoch seconds (decimal) -> ns, exactly (a float loses the nanoseconds of today's epoch times)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text} is negative')
    return int(value * NS_PER_S)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('-o', '--output', type=Path, required=True, help='new bag folder (must not exist)')
    parser.add_argument('--root', type=Path, help='dataset root: CamVid (<split>/, <split>annot/) or Cityscapes '
                                                  '(leftImg8bit/, gtFine/ with *_labelTrainIds.png)')
    parser.add_argument('--layout', choices=('auto', 'camvid', 'cityscapes'), default='auto')
    parser.add_argument('--split', default='val')
    parser.add_argument('--images', type=Path, help='image folder (instead of --root), paired with --labels by name')
    parser.add_argument('--labels', type=Path, help='label folder: 8-bit PNGs of class ids')
    parser.add_argument('--void', type=int, default=None,
                        help='label id written as 255 (ignore); CamVid: 11 automatically')
    parser.add_argument('--storage', choices=STORAGES, default='sqlite3')
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
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    """Write the bag, print what it holds."""
    from rtformer_ros.bags import BagError
    from rtformer_ros.bags.dataset import DEFAULT_START_NS, write_dataset_bag
    from rtformer_ros.datasets import find_samples, split_holdout

    image_topic = args.image_topic or ('/camera/image_raw/compressed' if args.compressed else '/camera/image_raw')
    samples, void = find_samples(args.root, args.split, args.layout, args.images, args.labels)
    if args.sequence:
        _, samples = split_holdout(samples, args.sequence)
        if not samples:
            msg = f'--sequence {" ".join(args.sequence)}: no frame of the dataset starts with it'
            raise BagError(msg)
    if args.limit > 0:
        samples = samples[:args.limit]
    summary = write_dataset_bag(
        samples, args.output, void=args.void if args.void is not None else void, storage=args.storage,
        compressed=args.compressed, jpeg_quality=args.jpeg_quality, rate_hz=args.rate,
        start_ns=DEFAULT_START_NS if args.start is None else args.start,
        frame_id=args.frame_id, image_topic=image_topic, label_topic=args.label_topic, progress=args.progress)
    print(f'{summary.path}: {summary.frames} frames on {summary.image_topic} and {summary.label_topic} '
          f'({args.storage}, {args.rate:g} Hz)')
    return 0
