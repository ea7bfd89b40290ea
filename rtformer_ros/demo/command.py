"""``rtformer demo``'s command line: options, one-line errors, the printed summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtformer_ros.demo.errors import DemoError
from rtformer_ros.demo.options import DemoOptions
from rtformer_ros.demo.session import run_demo
from rtformer_ros.demo.summary import format_summary
from rtformer_ros.models import PROVIDER_CHOICES

__all__ = ['HELP', 'NAME', 'add_arguments', 'main', 'run']

NAME = 'demo'
HELP = 'a street video through the real node: overlay video, GIF, contact sheet, summary in out/demo/'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rtformer demo``."""
    source = parser.add_argument_group('input (default: OpenCV vtest.avi, fetched once into ~/.cache/rtformer_ros)')
    source.add_argument('--video', type=Path, default=None, help='a video file OpenCV reads')
    source.add_argument('--bag', type=Path, default=None, help='a rosbag2 (folder, .db3 or .mcap) with a camera topic')
    source.add_argument('--image-topic', default=None,
                        help='camera topic in --bag (default: /camera/image_raw, or the only camera topic)')
    parser.add_argument('--model', default=None,
                        help="exported .onnx, or a name in the package's models/ (default: the node's, the shipped "
                             'RTFormer-Slim CamVid 360x480)')
    parser.add_argument('--providers', default='auto', choices=PROVIDER_CHOICES,
                        help='inference provider of the node (auto: TensorRT, CUDA, else the CPU: OpenVINO for INT8 '
                             'files, ONNX Runtime for fp32)')
    parser.add_argument('--out', type=Path, default=Path('out/demo'), help='output folder (default: %(default)s)')
    parser.add_argument('--max-frames', type=int, default=0, help='at most this many frames (default: all)')
    parser.add_argument('--realtime', action='store_true',
                        help="publish at the video's frame rate (the node drops what it cannot keep up with) "
                             'instead of lockstep (each frame waits for its outputs)')
    parser.add_argument('--timeout', type=float, default=20.0,
                        help='seconds to wait for the outputs of one frame (default: %(default)s)')
    parser.add_argument('--wait', type=float, default=120.0,
                        help='seconds the node may take to start and answer its first frame (a first TensorRT '
                             'build takes minutes; default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    """``rtformer demo``: run, print the summary and where the files are. Exit 1 with one line on error."""
    from rtformer_ros.bags.errors import BagError

    opts = DemoOptions(video=args.video, bag=args.bag, image_topic=args.image_topic, model=args.model,
                       providers=args.providers, out=args.out, max_frames=args.max_frames, realtime=args.realtime,
                       timeout_s=args.timeout, wait_s=args.wait, progress=False if args.no_progress else None)
    try:
        if opts.max_frames < 0 or opts.timeout_s <= 0 or opts.wait_s <= 0:
            msg = (f'--max-frames must be >= 0, --timeout and --wait > 0, got {opts.max_frames}, '
                   f'{opts.timeout_s:g} and {opts.wait_s:g}')
            raise DemoError(msg)
        summary = run_demo(opts)
    except (DemoError, BagError) as err:
        print(f'rtformer demo: {err}', file=sys.stderr)
        return 1
    except OSError as err:  # an output folder or cache that cannot be written
        where = f'{err.filename}: ' if err.filename else ''
        print(f'rtformer demo: {where}{err.strerror or err}', file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rtformer_ros.demo`` (the same as ``rtformer demo``)."""
    from rtformer_ros import demo  # the package's docstring describes the command

    parser = argparse.ArgumentParser(prog='rtformer demo', description=demo.__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        return 130
