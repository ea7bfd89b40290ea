"""The ``rtformer`` subcommands that are not part of a bigger tool (bench, train and demo keep theirs beside them).

Every subcommand module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, and
imports only light modules at the top (argparse, pathlib, util, errors, models): torch, ONNX, ONNX Runtime, rclpy
and OpenCV load inside ``run``, so ``rtformer --help`` stays instant. ``rtformer_ros.cli`` mounts them.
"""

from __future__ import annotations

import argparse

from rtformer_ros.metadata import MIN_INPUT_SIZE
from rtformer_ros.util import hw_arg

__all__ = ['STORAGES', 'add_progress', 'model_size']

STORAGES = ('sqlite3', 'mcap')
"""rosbag2 storages the bag commands write."""


def model_size(text: str) -> tuple[int, int]:
    """argparse ``type=``: an ``HxW`` the network accepts (each side >= its 1/32 minimum, 64)."""
    return hw_arg(MIN_INPUT_SIZE)(text)


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` as ``args.progress``: None (a bar on a terminal) or False, `rtformer_ros.util.progress`'s
    ``enabled``."""
    parser.add_argument('--no-progress', dest='progress', action='store_const', const=False, default=None,
                        help='no progress bar')
