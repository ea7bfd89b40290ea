"""``rtformer export``: checkpoint -> ONNX (uint8 frame in, labels out, metadata inside)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtformer_ros.commands import model_size

__all__ = ['HELP', 'NAME', 'add_arguments', 'run']

NAME = 'export'
HELP = 'checkpoint -> ONNX (uint8 frame in, labels out, metadata inside)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', type=Path)
    parser.add_argument('-o', '--output', type=Path, required=True)
    parser.add_argument('--size', type=model_size, required=True,
                        help='HxW of the graph input (static), e.g. 360x480')
    parser.add_argument('--net-size', type=model_size, default=None,
                        help='HxW the network runs at inside the graph (default: --size): the frame is resized to '
                             'it and the logits back, e.g. 480x640 for a model trained on crops smaller than the frame')
    parser.add_argument('--fp16', action='store_true', help='fp16 weights and compute (normalisations in fp32)')
    parser.add_argument('--confidence', action='store_true', help='also output the max softmax probability')
    parser.add_argument('--flip', action='store_true',
                        help='test-time flip: average the logits of the frame and of its mirror (about 2x the '
                             'compute)')
    parser.add_argument('--opset', type=int, default=None, help='ONNX opset (default 18)')


def run(args: argparse.Namespace) -> int:
    from rtformer_ros.export import DEFAULT_OPSET, export_checkpoint

    out = export_checkpoint(args.checkpoint, args.output, args.size, confidence=args.confidence, fp16=args.fp16,
                            net_size=args.net_size, flip=args.flip, opset=args.opset or DEFAULT_OPSET)
    net = f' (network at {args.net_size[0]}x{args.net_size[1]})' if args.net_size else ''
    flip = ', flip' if args.flip else ''
    print(f'{out}: {args.size[0]}x{args.size[1]}{net}, {"fp16" if args.fp16 else "fp32"}{flip}, '
          f'{out.stat().st_size / 1e6:.1f} MB')
    return 0
