"""``rtformer quantize``: an exported fp32 .onnx -> static INT8 (QDQ), calibrated on frames of a bag or folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtformer_ros.commands import add_progress

__all__ = ['HELP', 'NAME', 'add_arguments', 'run']

NAME = 'quantize'
HELP = 'exported fp32 .onnx -> INT8 (QDQ), calibrated on frames of a bag or folder'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ('Static INT8: per-channel int8 weights, uint8 activations with ranges from calibration '
                          "frames fed through the engine's own resize and colour path. Calibrate on frames like "
                          "the camera's, never on the frames you score on.")
    parser.add_argument('model', type=Path, help='fp32 .onnx from rtformer export')
    parser.add_argument('-o', '--output', type=Path, required=True, help='destination .onnx')
    parser.add_argument('--calib', type=Path, required=True,
                        help='calibration frames: an image folder (png/jpg/bmp) or a rosbag2 (folder, .db3 or .mcap)')
    parser.add_argument('--topic', default=None, help="the bag's image topic (default: its only image topic)")
    parser.add_argument('--frames', type=int, default=64,
                        help='calibration frames, spread over the source (default 64)')
    parser.add_argument('--method', default='minmax',
                        help='activation ranges: minmax (default), percentile (99.999th) or entropy; the last two '
                             "keep every frame's activations in memory and take at most 16 --frames")
    parser.add_argument('--resize', choices=('stretch', 'letterbox'), default='stretch',
                        help='how frames of another size are fitted (as the node parameter)')
    parser.add_argument('--keep-float', nargs='*', default=None, metavar='OP',
                        help='op types left in float besides the input normalisation and the output tail '
                             '(default: none; e.g. MatMul)')
    parser.add_argument('--confidence-op', default='softmax',
                        help='confidence as ReduceMax(Softmax) (softmax, default: fastest on OpenVINO) or as '
                             'exported, 1/sum(exp(l - max l)) (direct: fastest on the ORT CPU EP)')
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    from rtformer_ros.quantize import quantize_model

    out = quantize_model(args.model, args.output, args.calib, frames=args.frames, method=args.method,
                         topic=args.topic, resize=args.resize, keep_float=tuple(args.keep_float or ()),
                         confidence_op=args.confidence_op, progress=args.progress)
    print(f'{out}: int8 (QDQ), calibrated on {args.calib} ({args.method}), {out.stat().st_size / 1e6:.1f} MB')
    return 0
