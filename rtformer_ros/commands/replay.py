"""``rtformer replay``: play a bag's images into a running ``rtformer_node`` and record its outputs (rclpy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtformer_ros.commands import STORAGES, add_progress

__all__ = ['HELP', 'NAME', 'add_arguments', 'run']

NAME = 'replay'
HELP = "play a bag's images into the ROS graph and record the node's outputs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--bag', type=Path, required=True, help='input rosbag2')
    parser.add_argument('-o', '--output', type=Path, required=True, help='new bag with the node outputs')
    parser.add_argument('--image-topic', required=True, help='camera topic in the bag (Image or CompressedImage)')
    parser.add_argument('--label-topic', help='ground-truth topic copied into the output bag')
    parser.add_argument('--publish-topic', help='publish frames here (default: --image-topic)')
    parser.add_argument('--pred-topic', help="the node's labels (default: <namespace>/segmentation/labels of the "
                                             'published topic)')
    parser.add_argument('--record', action='append', default=[], metavar='TOPIC',
                        help='also record this Image topic of the node (repeatable), e.g. .../segmentation/color')
    parser.add_argument('--storage', choices=STORAGES, default='sqlite3')
    parser.add_argument('--rate', type=float, default=1.0, help='speed factor on the bag timing (default 1)')
    parser.add_argument('--lockstep', action='store_true',
                        help='send a frame, wait for its labels (by stamp), then the next: every frame is scored')
    parser.add_argument('--timeout', type=float, default=10.0,
                        help='s: lockstep wait per frame; otherwise the wait for the last outputs (default 10)')
    parser.add_argument('--wait', type=float, default=20.0, help='s to wait for the node to appear (default 20)')
    parser.add_argument('--limit', type=int, default=0, help='first N frames only (0: all)')
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    """Play, record, print how many frames came back and how to score them."""
    from rtformer_ros.bags import BagError
    from rtformer_ros.bags.replay import ReplayOptions, replay

    opts = ReplayOptions(bag=args.bag, output=args.output, image_topic=args.image_topic,
                         label_topic=args.label_topic, publish_topic=args.publish_topic, pred_topic=args.pred_topic,
                         record=tuple(args.record), storage=args.storage, rate=args.rate, lockstep=args.lockstep,
                         timeout_s=args.timeout, wait_s=args.wait, limit=args.limit, progress=args.progress)
    summary = replay(opts)
    print(f'{summary.output}: {summary.published} frames sent, labels for {summary.answered} '
          f'({len(summary.missed)} missed) in {summary.wall_s:.1f} s')
    if not summary.answered:
        raise BagError(f'no labels came back on {summary.pred_topic}')
    if args.label_topic:
        print(f'score: rtformer eval --bag {summary.output} --label-topic {args.label_topic} '
              f'--pred-topic {summary.pred_topic} --image-topic {args.image_topic} --model <model.onnx>')
    return 0
