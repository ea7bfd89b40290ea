"""``rtformer demo`` (see the package docstring): its options, and the printed summary."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rtformer_ros.demo.errors import DemoError
from rtformer_ros.models import PROVIDER_CHOICES

__all__ = ['HELP', 'NAME', 'DemoOptions', 'add_arguments', 'run']

NAME = 'demo'
HELP = 'a street video through the real node: overlay video, GIF, contact sheet, summary in out/demo/'


@dataclass(frozen=True)
class DemoOptions:
    """The command line as a typed record; see ``rtformer demo --help``.

    Attributes:
        video: a video file (None: vtest.avi, or ``bag``).
        bag: a rosbag2 to take frames from instead of a video.
        image_topic: the bag's camera topic (default: ``/camera/image_raw`` or the only camera topic).
        model: exported .onnx path or a name in the package's models/ folder (None: the node's default).
        providers: the node's ``providers`` parameter.
        out: folder for the files.
        max_frames: at most this many frames (0: all).
        realtime: publish at the video's rate instead of lockstep.
        timeout_s: lockstep: give up on a frame after this long; realtime: wait this long for the last one.
        wait_s: how long the node may take to start and answer a first frame.
        progress: tqdm bar (None: only on a terminal).
    """

    video: Path | None = None
    bag: Path | None = None
    image_topic: str | None = None
    model: str | None = None
    providers: str = 'auto'
    out: Path = Path('out/demo')
    max_frames: int = 0
    realtime: bool = False
    timeout_s: float = 20.0
    wait_s: float = 120.0
    progress: bool | None = None


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
    """Run the demo; print the summary and where the files are."""
    from rtformer_ros.demo.outputs import format_summary
    from rtformer_ros.demo.session import run_demo

    opts = DemoOptions(video=args.video, bag=args.bag, image_topic=args.image_topic, model=args.model,
                       providers=args.providers, out=args.out, max_frames=args.max_frames, realtime=args.realtime,
                       timeout_s=args.timeout, wait_s=args.wait, progress=False if args.no_progress else None)
    if opts.max_frames < 0 or opts.timeout_s <= 0 or opts.wait_s <= 0:
        msg = (f'--max-frames must be >= 0, --timeout and --wait > 0, got {opts.max_frames}, '
               f'{opts.timeout_s:g} and {opts.wait_s:g}')
        raise DemoError(msg)
    try:
        summary = run_demo(opts)
    except OSError as err:  # an output folder or cache that cannot be written
        where = f'{err.filename}: ' if err.filename else ''
        raise DemoError(f'{where}{err.strerror or err}') from err
    print(format_summary(summary))
    return 0
