"""Training options as one typed record: the recipe (what shapes the weights) and the runtime (how this process runs).

The recipe is stored in ``last.pt`` and ``best.pt``; ``--resume`` takes it from there and accepts only runtime
changes, so a resumed run cannot silently train on a different schedule. Plain Python, no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rtformer_ros.errors import RtformerError

__all__ = ['CLASS_WEIGHTS', 'DATASET_DEFAULTS', 'NO_SPLIT', 'RUNTIME_FIELDS', 'TrainConfig', 'TrainConfigError',
           'default_warmup']

DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # CamVid: full 360x480 frames as crops; 10k iterations x 8 = 218 epochs of the 367 training frames.
    'camvid': dict(crop=(360, 480), batch_size=8, iters=10_000),
    # Cityscapes: PaddleSeg's rtformer_*_cityscapes_1024x512_120k (batch 3/GPU x 4 GPUs).
    'cityscapes': dict(crop=(512, 1024), batch_size=12, iters=120_000),
    'folder': dict(crop=(512, 512), batch_size=8, iters=10_000),
}
"""Per-layout defaults for the options left unset (``None``) in `TrainConfig`."""

RUNTIME_FIELDS = frozenset({'out', 'threads', 'workers', 'val_every', 'log_every', 'stop_at', 'time_limit', 'device',
                            'amp', 'sync_bn'})
"""Options that may change on ``--resume``; every other field is the recipe."""

CLASS_WEIGHTS = ('none', 'enet')
"""``--class-weight`` rules: none, or ENet's ``1 / ln(1.02 + p_class)`` from the training labels."""

NO_SPLIT = 'none'
"""``--val-split none``: no validation split (e.g. a final run on train+val)."""

_TUPLE_FIELDS = ('crop', 'void_ids', 'scale_range', 'betas', 'holdout')


class TrainConfigError(RtformerError, ValueError):
    """An option value that cannot train."""


def default_warmup(iters: int) -> int:
    """Warm-up length: PaddleSeg's 1500 iterations, but at most 5 % of a shorter run."""
    return min(1500, round(0.05 * iters))


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``rtformer train`` needs. ``None`` means "the layout's default" until `resolved`.

    Learning-rate and augmentation defaults are PaddleSeg's RTFormer recipe (rtformer_spec.md 2.1), except
    ``bn_momentum``: 0.1 here, see docs/training.md.
    """

    # data
    dataset: str = 'camvid'  # layout: camvid | cityscapes | folder
    data_root: str | None = None
    train_split: str = 'train'  # one split, or several joined by '+' (train+val)
    val_split: str = 'val'  # or 'none'
    holdout: tuple[str, ...] = ()  # sequences (file-name prefixes) taken out of training; best.pt is chosen on them
    train_images: str | None = None  # folder layout only
    train_labels: str | None = None
    val_images: str | None = None
    val_labels: str | None = None
    label_suffix: str = ''  # folder layout: label = <labels>/<image stem><suffix>.png
    classes: str | None = None  # folder layout: a names file (one per line) or a dataset name
    num_classes: int | None = None
    void_ids: tuple[int, ...] = ()  # label ids mapped to the ignore id (CamVid's 11 is implied)
    # model
    model: str = 'slim'  # variant or preset of build_rtformer
    init: str | None = None  # checkpoint whose matching tensors (name and shape) start the run
    bn_momentum: float = 0.1  # PyTorch convention; 0.9 == PaddleSeg's bn_mom 0.1
    drop_path_rate: float | None = None  # None: the variant's/preset's
    # recipe
    crop: tuple[int, int] | None = None  # (H, W)
    batch_size: int | None = None
    iters: int | None = None
    lr: float = 4e-4
    end_lr: float = 1e-6
    warmup_iters: int | None = None  # None: default_warmup(iters)
    warmup_start_lr: float = 1e-6
    power: float = 1.0
    weight_decay: float = 0.0125
    betas: tuple[float, float] = (0.9, 0.999)
    head_lr_mult: float = 10.0  # spp., seghead., seghead_extra.
    aux_weight: float = 0.4
    ohem: bool = False
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 10_000
    scale_range: tuple[float, float, float] = (0.5, 2.0, 0.25)  # min, max, step
    flip: bool = True
    jitter: bool = True
    jitter_strength: float = 1.0  # scales the brightness/contrast/saturation/hue spreads of the jitter
    blur: float = 0.0  # probability of a Gaussian blur (sigma 0.3..1.5): motion and focus blur of real cameras
    class_weight: str = 'none'  # none | enet
    seed: int = 0
    val_scale: float = 1.0  # validate with the network on frames scaled by this (what export --net-size deploys)
    # runtime
    out: str | None = None  # None: work/train/<dataset>_<model>
    threads: int | None = None  # torch.set_num_threads; None: torch's default
    workers: int = 2
    val_every: int = 1000
    log_every: int = 20
    stop_at: int | None = None  # stop after this iteration (resume later); None: run to iters
    time_limit: float | None = None  # minutes of training after which this process saves and stops
    device: str = 'auto'  # auto | cpu | cuda
    amp: bool = True  # autocast: float16 + GradScaler on CUDA, bfloat16 on CPUs with native bf16 (AVX512-BF16/AMX)
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm)

    # ------------------------------------------------------------------------------------------------ derived

    def resolved(self) -> TrainConfig:
        """Fill the layout defaults and the warm-up length, then check every value.

        Raises:
            TrainConfigError: unknown layout or a value that cannot train; the message names the option.
        """
        if self.dataset not in DATASET_DEFAULTS:
            msg = f'--dataset {self.dataset!r}: expected one of {", ".join(DATASET_DEFAULTS)}'
            raise TrainConfigError(msg)
        filled = {k: v for k, v in DATASET_DEFAULTS[self.dataset].items() if getattr(self, k) is None}
        cfg = replace(self, **filled)
        if cfg.warmup_iters is None:
            cfg = replace(cfg, warmup_iters=default_warmup(cfg.iters))
        if cfg.out is None:
            cfg = replace(cfg, out=f'work/train/{cfg.dataset}_{cfg.model}')
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise `TrainConfigError` for the first option that cannot train."""
        lo, hi, step = self.scale_range
        rules = (
            (min(self.crop) >= 64, f'--crop {self.crop_text}: both sides must be >= 64 (1/32 feature map)'),
            (self.batch_size >= 2, f'--batch-size {self.batch_size}: BatchNorm needs at least 2 samples'),
            (self.iters >= 1, f'--iters {self.iters}: must be positive'),
            (0 <= self.warmup_iters < self.iters, f'--warmup-iters {self.warmup_iters}: must lie in 0..iters-1'),
            (self.lr > 0 and self.end_lr >= 0 and self.warmup_start_lr >= 0, '--lr/--end-lr: must be positive'),
            (self.weight_decay >= 0, f'--weight-decay {self.weight_decay}: must be >= 0'),
            (0 < lo <= hi and step > 0, f'--scale-range {lo} {hi} {step}: need 0 < min <= max and step > 0'),
            (self.val_scale > 0, f'--val-scale {self.val_scale}: must be positive'),
            (0 <= self.bn_momentum <= 1, f'--bn-momentum {self.bn_momentum}: must lie in 0..1'),
            (self.workers >= 0, f'--workers {self.workers}: must be >= 0'),
            (self.val_every >= 1 and self.log_every >= 1, '--val-every/--log-every: must be positive'),
            (self.threads is None or self.threads >= 1, f'--threads {self.threads}: must be positive'),
            (self.stop_at is None or self.stop_at >= 1, f'--stop-at {self.stop_at}: must be positive'),
            (self.time_limit is None or self.time_limit > 0, f'--time-limit {self.time_limit}: must be positive'),
            (self.device in ('auto', 'cpu', 'cuda'), f'--device {self.device!r}: expected auto, cpu or cuda'),
            (all(0 <= v <= 255 for v in self.void_ids), f'--void-id {self.void_ids}: ids lie in 0..255'),
            (self.jitter_strength >= 0, f'--jitter-strength {self.jitter_strength}: must be >= 0'),
            (0 <= self.blur <= 1, f'--blur {self.blur}: a probability, 0..1'),
            (self.class_weight in CLASS_WEIGHTS,
             f'--class-weight {self.class_weight!r}: expected one of {", ".join(CLASS_WEIGHTS)}'),
            (all(seq and '/' not in seq for seq in self.holdout),
             f'--holdout-sequence {self.holdout}: a file-name prefix such as 0006R0'),
        )
        for ok, msg in rules:
            if not ok:
                raise TrainConfigError(msg)

    @property
    def crop_text(self) -> str:
        return 'x'.join(str(v) for v in self.crop) if self.crop else 'default'

    # ------------------------------------------------------------------------------------------------ storage

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), as stored in checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def recipe(self) -> dict[str, Any]:
        """`to_dict` without the runtime options."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys (from a newer version) are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            msg = f'unknown training option(s) {", ".join(unknown)}'
            raise TrainConfigError(msg)
        tuples = {k: tuple(v) for k, v in values.items() if k in _TUPLE_FIELDS and v is not None}
        return cls(**{**values, **tuples})
