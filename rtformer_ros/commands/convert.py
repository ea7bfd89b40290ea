"""``rtformer convert``: official PaddleSeg RTFormer weights -> a self-describing ``.pt`` checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ['HELP', 'NAME', 'add_arguments', 'run']

NAME = 'convert'
HELP = 'PaddleSeg .pdparams -> self-describing .pt checkpoint'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ('Convert official PaddleSeg RTFormer weights. The pickle is read with a restricted '
                          'unpickler: only numpy arrays, nothing in the file runs.')
    parser.add_argument('src', type=Path, help='.pdparams file (or an unpacked PaddleSeg zip folder)')
    parser.add_argument('-o', '--output', type=Path, required=True, help='destination .pt')
    parser.add_argument('--variant', choices=('slim', 'base'), required=True)
    parser.add_argument('--num-classes', type=int, required=True)
    parser.add_argument('--cross-size', type=int, default=None,
                        help='cross-attention pool size; invisible in the weights (default: the preset of '
                             '--dataset, else 12; Slim-ADE20K uses 8)')
    parser.add_argument('--dataset', default=None,
                        help='class names/palette: camvid, cityscapes, ade20k, coco_stuff or any name (generic '
                             'names); default guessed from --num-classes')


def _guess_dataset(num_classes: int) -> str:
    from rtformer_ros.classes import DATASETS

    matches = [name for name, classes in DATASETS.items() if classes.num_classes == num_classes]
    return matches[0] if matches else f'custom{num_classes}'


def run(args: argparse.Namespace) -> int:
    from rtformer_ros.classes import get_classes
    from rtformer_ros.model import PRESETS, build_rtformer, save_checkpoint
    from rtformer_ros.model.convert import ConvertError, convert_state_dict, infer_options, load_pdparams

    if args.cross_size is not None and args.cross_size < 1:
        raise ConvertError(f'--cross-size {args.cross_size}: give 1 or more')
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
    preset = PRESETS.get(f'{args.variant}_{dataset}')
    options = dict(preset.options) if preset else {}
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
