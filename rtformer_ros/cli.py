"""``rtformer``: one command line for the package (convert, info, export, quantize, bench, train, eval, ...).

Every subcommand is a module with ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` whose
top-level imports are light (torch, ONNX, ONNX Runtime, rclpy and OpenCV load inside ``run``), so
``rtformer --help`` is instant and a robot with only ONNX Runtime can still run the commands that need nothing
more. A known failure (`RtformerError`) prints one line ``rtformer <command>: <problem>`` and exits 1; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from rtformer_ros import __version__
from rtformer_ros.errors import RtformerError, first_line

__all__ = ['COMMANDS', 'build_parser', 'main']

COMMANDS = (
    'rtformer_ros.commands.convert',
    'rtformer_ros.commands.info',
    'rtformer_ros.commands.export',
    'rtformer_ros.commands.quantize',
    'rtformer_ros.bench',
    'rtformer_ros.train.command',
    'rtformer_ros.commands.eval',
    'rtformer_ros.commands.eval_merge',
    'rtformer_ros.commands.bag_from_dataset',
    'rtformer_ros.commands.replay',
    'rtformer_ros.demo.command',
)
"""The subcommand modules, in ``rtformer --help`` order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='rtformer', description=__doc__.splitlines()[0])
    parser.add_argument('--version', action='version', version=f'rtformer_ros {__version__}')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name in COMMANDS:
        command = import_module(name)
        command_parser = sub.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(command_parser)
        command_parser.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:  # Ctrl-C while the parser's modules load is an interrupt too
        args = build_parser().parse_args(argv)
        try:
            return args.handler(args)
        except RtformerError as err:
            print(f'rtformer {args.command}: {first_line(err, limit=None)}', file=sys.stderr)  # ours: one whole line
            return 1
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
