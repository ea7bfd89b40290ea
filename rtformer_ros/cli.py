"""``rtformer``: one command line for the package (convert, info, export, quantize, bench, train, eval, ...).

Subcommands import their heavy modules (torch, onnx) lazily, so ``rtformer --help`` is instant and a robot with
only ONNX Runtime can still run the commands that need nothing more. Every known failure prints one line
``rtformer <command>: <problem>`` and exits 1, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from rtformer_ros import __version__

__all__ = ['main']

Handler = Callable[[argparse.Namespace], int]


def _size(text: str) -> tuple[int, int]:
    from rtformer_ros.export import parse_size

    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# ------------------------------------------------------------------------------------------------ convert

def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('convert', help='PaddleSeg .pdparams -> self-describing .pt checkpoint',
                       description='Convert official PaddleSeg RTFormer weights. The pickle is read with a '
                                   'restricted unpickler: only numpy arrays, nothing in the file runs.')
    p.add_argument('src', type=Path, help='.pdparams file (or an unpacked PaddleSeg zip folder)')
    p.add_argument('-o', '--output', type=Path, required=True, help='destination .pt')
    p.add_argument('--variant', choices=('slim', 'base'), required=True)
    p.add_argument('--num-classes', type=int, required=True)
    p.add_argument('--cross-size', type=int, default=None,
                   help='cross-attention pool size; invisible in the weights (default: the preset of '
                        '--dataset, else 12; Slim-ADE20K uses 8)')
    p.add_argument('--dataset', default=None,
                   help='class names/palette: camvid, cityscapes, ade20k, coco_stuff or any name (generic names); '
                        'default guessed from --num-classes')
    p.set_defaults(handler=_convert)


def _guess_dataset(num_classes: int) -> str:
    from rtformer_ros.classes import DATASETS

    matches = [name for name, classes in DATASETS.items() if classes.num_classes == num_classes]
    return matches[0] if matches else f'custom{num_classes}'


def _convert(args: argparse.Namespace) -> int:
    from rtformer_ros.classes import get_classes
    from rtformer_ros.model import PRESETS, build_rtformer, save_checkpoint
    from rtformer_ros.model.convert import ConvertError, convert_state_dict, infer_options, load_pdparams

    arrays = load_pdparams(args.src)
    found = infer_options(arrays)
    if found['variant'] != args.variant:
        msg = (f'{args.src}: weights are RTFormer-{found["variant"]} (stem width {found["base_channels"]}), '
               f'not {args.variant}')
        raise ConvertError(msg)
    if found['num_classes'] != args.num_classes:
        msg = f'{args.src}: weights have {found["num_classes"]} classes, not --num-classes {args.num_classes}'
        raise ConvertError(msg)
    dataset = args.dataset or _guess_dataset(args.num_classes)
    classes = get_classes(dataset, args.num_classes)
    options = dict(PRESETS[f'{args.variant}_{dataset}'].options) if f'{args.variant}_{dataset}' in PRESETS else {}
    options.update(num_classes=args.num_classes, use_injection=found['use_injection'],
                   use_aux_head='head_channels' in found)
    if args.cross_size is not None:
        options['cross_size'] = args.cross_size
    model = build_rtformer(args.variant, **options)
    model.load_state_dict(convert_state_dict(arrays, model))
    save_checkpoint(args.output, model, classes, extra={'source': str(args.src), 'converted_from': 'paddleseg'})
    cfg = model.cfg
    print(f'{args.output}: RTFormer-{args.variant}, {classes.name} ({cfg.num_classes} classes), '
          f'cross_size {cfg.cross_size}, injection {list(cfg.use_injection)}, {len(arrays)} tensors converted')
    return 0


# ------------------------------------------------------------------------------------------------ info

def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('info', help='describe a checkpoint (.pt) or an exported model (.onnx)')
    p.add_argument('model', type=Path)
    p.add_argument('--size', type=_size, default=(1024, 2048), help='HxW for the GMACs count (default 1024x2048)')
    p.add_argument('--json', action='store_true', help='print JSON instead of text')
    p.set_defaults(handler=_info)


def _info(args: argparse.Namespace) -> int:
    if args.model.suffix == '.onnx':
        info = _onnx_info(args.model)
    else:
        info = _checkpoint_info(args.model, args.size)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f'{key:<{width}}  {", ".join(map(str, value)) if isinstance(value, list) else value}')
    return 0


def _checkpoint_info(path: Path, size: tuple[int, int]) -> dict:
    from rtformer_ros.model import load_checkpoint
    from rtformer_ros.model.rtformer import count_macs, count_params, variant_of

    ckpt = load_checkpoint(path)
    model, cfg = ckpt.model, ckpt.model.cfg
    memories = [n for n, _ in model.named_parameters() if n.endswith(('attn_l.k', 'attn_l.v'))]
    return {
        'file': str(path),
        'variant': variant_of(cfg),
        'dataset': ckpt.classes.name,
        'num_classes': cfg.num_classes,
        'classes': list(ckpt.classes.names),
        'cross_size': cfg.cross_size,
        'use_injection': list(cfg.use_injection),
        'params': count_params(model),
        'params_without_aux': count_params(model, ['seghead_extra']),
        # The paper's 4.8 M / 16.8 M leave out the aux head and the GFA memories k, v (used functionally).
        'params_paper_convention': count_params(model, ['seghead_extra', *memories]),
        f'gmacs_{size[0]}x{size[1]}': round(count_macs(model, size) / 1e9, 2),
        **{k: v for k, v in ckpt.extra.items() if isinstance(v, (str, int, float))},
    }


def _onnx_info(path: Path) -> dict:
    from rtformer_ros.engine import SegmentationEngine

    with SegmentationEngine(path, providers='cpu', warmup=0) as engine:
        meta = engine.metadata
        return {
            'file': str(path),
            'variant': meta.variant,
            'dataset': meta.dataset,
            'num_classes': meta.num_classes,
            'classes': list(meta.class_names),
            'input_size': f'{meta.input_size[0]}x{meta.input_size[1]}',
            'net_size': f'{meta.net_size[0]}x{meta.net_size[1]}',
            'layout': meta.layout,
            'precision': meta.precision,
            'confidence': meta.confidence,
            'package_version': meta.package_version,
            **({'calibration': meta.calibration} if meta.calibration else {}),
            'flip': meta.flip,
        }


# ------------------------------------------------------------------------------------------------ export

def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('export', help='checkpoint -> ONNX (uint8 frame in, labels out, metadata inside)')
    p.add_argument('checkpoint', type=Path)
    p.add_argument('-o', '--output', type=Path, required=True)
    p.add_argument('--size', type=_size, required=True, help='HxW of the graph input (static), e.g. 360x480')
    p.add_argument('--net-size', type=_size, default=None,
                   help='HxW the network runs at inside the graph (default: --size): the frame is resized to it '
                        'and the logits back, e.g. 480x640 for the shipped CamVid model')
    p.add_argument('--fp16', action='store_true', help='fp16 weights and compute (normalisations in fp32)')
    p.add_argument('--confidence', action='store_true', help='also output the max softmax probability')
    p.add_argument('--flip', action='store_true',
                   help='test-time flip: average the logits of the frame and of its mirror (about 2x the compute)')
    p.add_argument('--opset', type=int, default=None, help='ONNX opset (default 18)')
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from rtformer_ros.export import DEFAULT_OPSET, export_checkpoint

    out = export_checkpoint(args.checkpoint, args.output, args.size, confidence=args.confidence, fp16=args.fp16,
                            net_size=args.net_size, flip=args.flip, opset=args.opset or DEFAULT_OPSET)
    net = f' (network at {args.net_size[0]}x{args.net_size[1]})' if args.net_size else ''
    flip = ', flip' if args.flip else ''
    print(f'{out}: {args.size[0]}x{args.size[1]}{net}, {"fp16" if args.fp16 else "fp32"}{flip}, '
          f'{out.stat().st_size / 1e6:.1f} MB')
    return 0


# ------------------------------------------------------------------------------------------------ quantize

def _add_quantize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('quantize', help='exported fp32 .onnx -> INT8 (QDQ), calibrated on frames of a bag or folder',
                       description='Static INT8: per-channel int8 weights, uint8 activations with ranges from '
                                   "calibration frames fed through the engine's own resize and colour path. "
                                   "Calibrate on frames like the camera's, never on the frames you score on.")
    p.add_argument('model', type=Path, help='fp32 .onnx from rtformer export')
    p.add_argument('-o', '--output', type=Path, required=True, help='destination .onnx')
    p.add_argument('--calib', type=Path, required=True,
                   help='calibration frames: an image folder (png/jpg/bmp) or a rosbag2 (folder, .db3 or .mcap)')
    p.add_argument('--topic', default=None, help="the bag's image topic (default: its only image topic)")
    p.add_argument('--frames', type=int, default=64, help='calibration frames, spread over the source (default 64)')
    p.add_argument('--method', default='minmax',
                   help='activation ranges: minmax (default), percentile (99.999th) or entropy; the last two keep '
                        "every frame's activations in memory and take at most 16 --frames")
    p.add_argument('--resize', choices=('stretch', 'letterbox'), default='stretch',
                   help='how frames of another size are fitted (as the node parameter)')
    p.add_argument('--keep-float', nargs='*', default=None, metavar='OP',
                   help='op types left in float besides the input normalisation and the output tail '
                        '(default: none; e.g. MatMul)')
    p.add_argument('--confidence-op', default='softmax',
                   help='confidence as ReduceMax(Softmax) (softmax, default: fastest on OpenVINO) or as exported, '
                        '1/sum(exp(l - max l)) (direct: fastest on the ORT CPU EP)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.set_defaults(handler=_quantize)


def _quantize(args: argparse.Namespace) -> int:
    from rtformer_ros.quantize import quantize_model

    out = quantize_model(args.model, args.output, args.calib, frames=args.frames, method=args.method,
                         topic=args.topic, resize=args.resize, keep_float=tuple(args.keep_float or ()),
                         confidence_op=args.confidence_op, progress=not args.no_progress)
    print(f'{out}: int8 (QDQ), calibrated on {args.calib} ({args.method}), {out.stat().st_size / 1e6:.1f} MB')
    return 0


# ------------------------------------------------------------------------------------------------ bench, train

def _add_bench(sub: argparse._SubParsersAction) -> None:
    from rtformer_ros import bench

    p = sub.add_parser('bench', help='latency/FPS of PyTorch eager and ONNX Runtime providers (table + JSON)')
    bench.add_arguments(p)
    p.set_defaults(handler=bench.run)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from rtformer_ros import train  # light: torch is imported when the command runs

    p = sub.add_parser('train', help='train RTFormer (CamVid, Cityscapes, or image+label folders)')
    train.add_arguments(p)
    p.set_defaults(handler=train.run)


def _add_bags(sub: argparse._SubParsersAction) -> None:
    from rtformer_ros import bags  # light: rosbags, ORT and rclpy are imported when a command runs

    helps = {
        'eval': 'score a model (or recorded predictions) on a rosbag2 with ground-truth labels',
        'eval-merge': 'merge the part files of rtformer eval --bags --shard I/N into one report',
        'bag-from-dataset': 'write a rosbag2 (sqlite3/mcap) of images + labels from a dataset',
        'replay': "play a bag's images into the ROS graph and record the node's outputs",
    }
    for name, text in helps.items():
        key = name.replace('-', '_')
        p = sub.add_parser(name, help=text)
        getattr(bags, f'add_{key}_arguments')(p)
        p.set_defaults(handler=getattr(bags, f'run_{key}'))


# ------------------------------------------------------------------------------------------------ demo

def _add_demo(sub: argparse._SubParsersAction) -> None:
    from rtformer_ros import demo  # light: rclpy, OpenCV and ORT are imported when the command runs

    p = sub.add_parser('demo', help='a street video through the real node: overlay video, GIF, contact sheet, '
                                    'summary in out/demo/')
    demo.add_arguments(p)
    p.set_defaults(handler=demo.run)


# ------------------------------------------------------------------------------------------------ main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='rtformer', description=__doc__.splitlines()[0])
    parser.add_argument('--version', action='version', version=f'rtformer_ros {__version__}')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for add in (_add_convert, _add_info, _add_export, _add_quantize, _add_bench, _add_train, _add_bags, _add_demo):
        add(sub)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [FileNotFoundError, ValueError]
    for module, name in (('rtformer_ros.engine', 'EngineError'), ('rtformer_ros.export', 'ExportError')):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except ImportError:
            pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except _known_errors() as err:  # ConvertError, CheckpointError, MetadataError are ValueErrors
        print(f'rtformer {args.command}: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
