"""``rtformer train``: the command line of the training pipeline. Imports torch only when it runs.

Every recipe option defaults to ``None`` on the command line, so `run` can tell what was typed: a new run
fills the rest from `TrainConfig`; ``--resume`` takes the saved recipe and accepts only runtime changes.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields, replace
from typing import Any

from rtformer_ros.errors import RtformerError
from rtformer_ros.train.config import CLASS_WEIGHTS, DATASET_DEFAULTS, RUNTIME_FIELDS, TrainConfig, TrainConfigError
from rtformer_ros.util import hw_arg

__all__ = ['HELP', 'NAME', 'add_arguments', 'config_from_args', 'run']

NAME = 'train'
HELP = 'train RTFormer (CamVid, Cityscapes, or image+label folders)'

_DEFAULTS = TrainConfig()
_FIELDS = tuple(f.name for f in fields(TrainConfig))


def _default(name: str) -> str:
    return f'(default: {getattr(_DEFAULTS, name)})'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``rtformer train`` options to ``parser`` (a subcommand parser of the ``rtformer`` CLI)."""
    per_layout = '; '.join(f'{k} {"x".join(map(str, v["crop"]))}, batch {v["batch_size"]}, {v["iters"]} iters'
                           for k, v in DATASET_DEFAULTS.items())
    data = parser.add_argument_group('data')
    data.add_argument('--dataset', choices=tuple(DATASET_DEFAULTS),
                      help='on-disk layout: camvid (SegNet split/ + splitannot/), cityscapes (leftImg8bit/ + gtFine/ '
                           '*_labelTrainIds.png) or folder (image and label directories) ' + _default('dataset'))
    data.add_argument('--data-root', metavar='DIR', help='dataset root (camvid, cityscapes)')
    data.add_argument('--train-split', metavar='NAME',
                      help=f'split directory name; several joined by + train on all, e.g. train+val for a final '
                           f'model {_default("train_split")}')
    data.add_argument('--val-split', metavar='NAME',
                      help=f'split directory name, or none (no validation) {_default("val_split")}')
    data.add_argument('--holdout-sequence', dest='holdout', action='append', metavar='SEQ',
                      help='take every frame whose file name starts with SEQ (a CamVid sequence: 0001TP, 0006R0, '
                           '0016E5, Seq05VD) out of training and choose best.pt on it; the val split is still scored '
                           'and logged separately. Repeatable. CamVid val shares 0016E5 with train, so only a '
                           'held-out sequence predicts accuracy on streets the model never saw')
    for split in ('train', 'val'):
        data.add_argument(f'--{split}-images', metavar='DIR', help=f'folder layout: {split} images')
        data.add_argument(f'--{split}-labels', metavar='DIR', help=f'folder layout: {split} label images (ids)')
    data.add_argument('--label-suffix', metavar='TEXT',
                      help='folder layout: label of x.jpg is <labels>/x<TEXT>.png (default: none)')
    data.add_argument('--classes', metavar='FILE|NAME',
                      help='folder layout: class names file (one per line) or a dataset name (camvid, cityscapes, '
                           'ade20k, coco_stuff, or any name with --num-classes)')
    data.add_argument('--num-classes', type=int, metavar='K', help='class count (checked against the classes)')
    data.add_argument('--void-id', dest='void_ids', type=int, action='append', metavar='ID',
                      help="label id to ignore like 255; repeatable (CamVid's 11 is implied)")

    model = parser.add_argument_group('model')
    model.add_argument('--model', metavar='NAME',
                       help='slim, base or a preset such as slim_camvid ' + _default('model'))
    model.add_argument('--init', metavar='CKPT',
                       help='start from a checkpoint (e.g. converted Cityscapes weights): tensors matching by name '
                            'and shape are copied, the rest (e.g. the class layer) stay fresh')
    model.add_argument('--bn-momentum', type=float, metavar='M',
                       help='BatchNorm running-stat momentum, PyTorch convention (0.9 == PaddleSeg bn_mom 0.1) '
                            + _default('bn_momentum'))
    model.add_argument('--drop-path-rate', type=float, metavar='P', help="stochastic depth (default: the model's)")

    recipe = parser.add_argument_group('recipe (defaults: PaddleSeg RTFormer; per layout: ' + per_layout + ')')
    recipe.add_argument('--crop', type=hw_arg(), metavar='HxW', help='training crop')
    recipe.add_argument('--batch-size', type=int, metavar='N',
                        help='global batch: under torchrun split evenly over the processes (--lr belongs to it)')
    recipe.add_argument('--iters', type=int, metavar='N', help='training iterations (optimizer steps)')
    recipe.add_argument('--lr', type=float, help='base learning rate ' + _default('lr'))
    recipe.add_argument('--end-lr', type=float, help='end of the poly decay ' + _default('end_lr'))
    recipe.add_argument('--warmup-iters', type=int, metavar='N',
                        help='linear warm-up (default: min(1500, 5%% of iters))')
    recipe.add_argument('--warmup-start-lr', type=float, help=_default('warmup_start_lr'))
    recipe.add_argument('--power', type=float, help='poly decay power ' + _default('power'))
    recipe.add_argument('--weight-decay', type=float, help='AdamW decoupled decay ' + _default('weight_decay'))
    recipe.add_argument('--betas', type=float, nargs=2, metavar=('B1', 'B2'), help='AdamW betas (default: 0.9 0.999)')
    recipe.add_argument('--head-lr-mult', type=float, metavar='X',
                        help='learning-rate factor of spp., seghead., seghead_extra. ' + _default('head_lr_mult'))
    recipe.add_argument('--aux-weight', type=float, help='aux head loss weight ' + _default('aux_weight'))
    recipe.add_argument('--ohem', action='store_const', const=True, help='OHEM cross-entropy instead of plain')
    recipe.add_argument('--ohem-thresh', type=float, help=_default('ohem_thresh'))
    recipe.add_argument('--ohem-min-kept', type=int, metavar='N', help=_default('ohem_min_kept'))
    recipe.add_argument('--scale-range', type=float, nargs=3, metavar=('MIN', 'MAX', 'STEP'),
                        help='random rescale factors (default: 0.5 2.0 0.25)')
    recipe.add_argument('--no-flip', dest='flip', action='store_const', const=False, help='no horizontal flip')
    recipe.add_argument('--no-jitter', dest='jitter', action='store_const', const=False,
                        help='no brightness/contrast/saturation/hue distortion')
    recipe.add_argument('--jitter-strength', type=float, metavar='X',
                        help='multiply the colour-jitter spreads (brightness, contrast, saturation 0.4; hue 18) by X '
                             + _default('jitter_strength'))
    recipe.add_argument('--blur', type=float, metavar='P',
                        help='probability of a Gaussian blur, sigma 0.3-1.5 px ' + _default('blur'))
    recipe.add_argument('--class-weight', choices=CLASS_WEIGHTS,
                        help='loss weight per class: enet = 1/ln(1.02 + class share of the training pixels) '
                             + _default('class_weight'))
    recipe.add_argument('--seed', type=int, help=_default('seed'))
    recipe.add_argument('--val-scale', type=float, metavar='S',
                        help='validate with the network on frames scaled by S, logits back at the label size (as '
                             'rtformer export --net-size deploys it); best.pt is chosen on it ' + _default('val_scale'))

    runtime = parser.add_argument_group('runtime (may change on --resume)')
    runtime.add_argument('--out', metavar='DIR', help='run directory (default: work/train/<dataset>_<model>)')
    runtime.add_argument('--resume', action='store_true',
                         help='continue the run in --out from last.pt, with its saved recipe')
    runtime.add_argument('--threads', type=int, metavar='N', help='torch CPU threads (default: torch decides)')
    runtime.add_argument('--workers', type=int, metavar='N', help='data loader processes ' + _default('workers'))
    runtime.add_argument('--val-every', type=int, metavar='N',
                         help='validate, keep best.pt and save last.pt every N iterations ' + _default('val_every'))
    runtime.add_argument('--log-every', type=int, metavar='N', help='log.csv row every N iterations '
                         + _default('log_every'))
    runtime.add_argument('--stop-at', type=int, metavar='ITER', help='save and stop after this iteration')
    runtime.add_argument('--time-limit', type=float, metavar='MIN', help='save and stop after MIN minutes of training')
    runtime.add_argument('--device', choices=('auto', 'cpu', 'cuda'), help=_default('device'))
    runtime.add_argument('--no-amp', dest='amp', action='store_const', const=False,
                         help='train in float32 (the default autocasts: float16 with a gradient scaler on CUDA, '
                              'bfloat16 on CPUs with native bf16 such as AVX512-BF16 or AMX; validation is float32 '
                              'on CPU)')
    runtime.add_argument('--sync-bn', dest='sync_bn', action='store_const', const=True,
                         help='under torchrun on GPUs: SyncBatchNorm, statistics over the global batch instead of '
                              "each process's share (docs/training.md, multi-GPU)")


def _typed(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as `TrainConfig` values."""
    given = {name: getattr(args, name) for name in _FIELDS if getattr(args, name, None) is not None}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved options of a run: from the command line, or the saved recipe plus runtime options on resume.

    Raises:
        TrainConfigError: a bad value, or a recipe option on ``--resume`` that differs from the saved one.
        TrainError: ``--resume`` without a readable ``<out>/last.pt``.
    """
    given = _typed(args)
    if not getattr(args, 'resume', False):
        return TrainConfig(**given).resolved()
    from rtformer_ros.train.loop import saved_config

    naming = {k: v for k, v in given.items() if k in ('dataset', 'model')}
    out = given.get('out') or TrainConfig(**naming).resolved().out
    saved = saved_config(out)
    stored, typed = saved.to_dict(), replace(saved, **given).to_dict()
    changed = [k for k in given if k not in RUNTIME_FIELDS and typed[k] != stored[k]]
    if changed:
        shown = ', '.join(f'--{k.replace("_", "-")} {typed[k]} (saved {stored[k]})' for k in changed)
        msg = f'--resume keeps the saved recipe; these differ: {shown}'
        raise TrainConfigError(msg)
    # Stop points belong to one process: a resumed run goes on to the end unless told otherwise.
    runtime = {'stop_at': None, 'time_limit': None, **{k: v for k, v in given.items() if k in RUNTIME_FIELDS}}
    cfg = replace(saved, **{**runtime, 'out': str(out)})
    cfg.check()
    return cfg


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say (errors go to `rtformer_ros.cli`'s one-line handler); 0 when done or stopped."""
    rank = os.environ.get('RANK', '0')
    if rank != '0':  # under torchrun rank 0's bars alone; tqdm reads this on import
        os.environ.setdefault('TQDM_DISABLE', '1')
    from rtformer_ros.train.loop import train

    try:
        train(config_from_args(args), resume=bool(getattr(args, 'resume', False)))
    except RtformerError:
        if rank != '0':  # under torchrun every process may fail: each says which it is
            args.command = f'train (rank {rank})'
        raise
    except KeyboardInterrupt:
        print('rtformer train: interrupted; last.pt holds the last validation point (continue with --resume)',
              file=sys.stderr)
        raise
    return 0
