"""``rtformer info``: what a checkpoint (.pt) or an exported model (.onnx) holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rtformer_ros.commands import model_size

__all__ = ['HELP', 'NAME', 'add_arguments', 'run']

NAME = 'info'
HELP = 'describe a checkpoint (.pt) or an exported model (.onnx)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('model', type=Path)
    parser.add_argument('--size', type=model_size, default=(1024, 2048),
                        help='HxW for the GMACs count (default 1024x2048)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of text')


def run(args: argparse.Namespace) -> int:
    info = _onnx_info(args.model) if args.model.suffix == '.onnx' else _checkpoint_info(args.model, args.size)
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
