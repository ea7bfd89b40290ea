"""``rtformer demo`` (see the package docstring): its options, its error, and the printed summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtformer_ros.commands import add_progress
from rtformer_ros.errors import RtformerError
from rtformer_ros.models import PROVIDER_CHOICES

__all__ = ['HELP', 'NAME', 'DemoError', 'add_arguments', 'run']

NAME = 'demo'
HELP = 'a street video through the real node: overlay video, GIF, contact sheet, summary in out/demo/'


class DemoError(RtformerError, RuntimeError):
    """The demo cannot run: no video, no model, or the node did not start or answer."""


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
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo; print the summary and where the files are."""
    try:
        import rclpy  # noqa: F401 - only to fail early, with one line, where ROS 2 is missing
    except ImportError as err:
        msg = (f'needs ROS 2 for Python ({err.name} is missing): source your ROS 2 setup.bash, or install '
               'requirements.txt (ROS 2 wheels)')
        raise DemoError(msg) from None
    from rtformer_ros.demo.outputs import format_summary
    from rtformer_ros.demo.session import run_demo
    from rtformer_ros.ros.client import large_frames

    if args.max_frames < 0 or args.timeout <= 0 or args.wait <= 0:
        msg = (f'--max-frames must be >= 0, --timeout and --wait > 0, got {args.max_frames}, {args.timeout:g} '
               f'and {args.wait:g}')
        raise DemoError(msg)
    try:
        with large_frames():  # vtest.avi's 768x576 frames need Fast DDS's large-data transports
            summary = run_demo(args)
    except OSError as err:  # an output folder or cache that cannot be written
        msg = f'{err.filename}: {err.strerror or err}' if err.filename else str(err.strerror or err)
        raise DemoError(msg) from err
    print(format_summary(summary))
    return 0
