"""The training loop: data check, model, AdamW + warm-up/poly, autocast (fp16 CUDA, bf16 CPU), validation,
checkpoints, resume.

Output directory (``--out``, default ``work/train/<dataset>_<model>``, git-ignored):
    config.json   the resolved options of the latest start
    last.pt       resume state: model, optimizer, scheduler, scaler, iteration, RNG states, best score
    best.pt       best mIoU so far on the held-out sequences (``--holdout-sequence``), else on the val split,
                  in the self-describing `save_checkpoint` format
    final.pt      the weights after the last iteration (what a run on train+val ships), same format
    log.csv       iter, loss, aux_loss, lr, val_miou, holdout_miou, time
    curves.png    the log drawn

Under torchrun (``distributed``) every process trains on its share of each global batch and scores its share
of the evaluation frames; only rank 0 writes these files, logs and shows progress.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from rtformer_ros.classes import ClassSet, get_classes
from rtformer_ros.datasets import (
    LAYOUTS,
    DatasetError,
    LabelMap,
    Sample,
    check_samples,
    folder_classes,
    folder_samples,
    label_histogram,
    split_holdout,
)
from rtformer_ros.errors import RtformerError
from rtformer_ros.metadata import MIN_INPUT_SIZE
from rtformer_ros.metrics import ConfusionMatrix
from rtformer_ros.model import CheckpointError, build_rtformer, load_checkpoint, save_checkpoint
from rtformer_ros.model.checkpoint import read_payload
from rtformer_ros.model.rtformer import RTFormer, count_params, resize
from rtformer_ros.train.config import NO_SPLIT, TrainConfig, TrainConfigError
from rtformer_ros.train.datasets import IterationBatches, SegmentationDataset
from rtformer_ros.train.distributed import Distributed, weights_digest
from rtformer_ros.train.history import History
from rtformer_ros.train.losses import SegLoss, enet_weights
from rtformer_ros.train.schedule import WarmupPoly, param_groups
from rtformer_ros.train.transforms import ColorJitter, TrainTransform, scale_steps
from rtformer_ros.util import progress

__all__ = ['BEST', 'CURVES', 'FINAL', 'LAST', 'LOG', 'Data', 'TrainError', 'TrainResult', 'Trainer', 'load_data',
           'saved_config', 'train']

LAST, BEST, FINAL, LOG, CURVES, CONFIG = 'last.pt', 'best.pt', 'final.pt', 'log.csv', 'curves.png', 'config.json'
STATE_FORMAT = 'rtformer_ros.train_state/1'
MAX_BAD_STEPS = 10  # consecutive non-finite losses tolerated (AMP overflow) before the run is declared diverged


class TrainError(RtformerError, RuntimeError):
    """Training cannot start or continue; the message says why (and names the file when there is one)."""


def _log(msg: str) -> None:
    if os.environ.get('RANK', '0') == '0':  # under torchrun, rank 0 speaks for the run
        tqdm.write(msg)


# -------------------------------------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Data:
    """Checked training, validation and held-out samples with their classes."""

    classes: ClassSet
    label_map: LabelMap
    train: list[Sample]
    val: list[Sample]
    holdout: list[Sample] = field(default_factory=list)  # frames of the --holdout-sequence recordings


def load_data(cfg: TrainConfig) -> Data:
    """List the splits of the configured layout, take the held-out sequences out of them, and check every file
    (before any training starts).

    Raises:
        DatasetError: a missing directory or label, unreadable file, size mismatch, out-of-range label id, or a
            held-out sequence with no frame.
    """
    layout = LAYOUTS.get(cfg.dataset)
    if layout is not None:
        if cfg.data_root is None:
            msg = f'--dataset {cfg.dataset} needs --data-root (the directory holding its splits)'
            raise DatasetError(msg)
        if not Path(cfg.data_root).is_dir():
            msg = f'--data-root {cfg.data_root}: no such directory'
            raise DatasetError(msg)
        classes = get_classes(layout.classes)
        train_set = [s for split in cfg.train_split.split('+') for s in layout.find(Path(cfg.data_root), split)]
        val_set = [] if cfg.val_split == NO_SPLIT else layout.find(Path(cfg.data_root), cfg.val_split)
        void_ids = tuple(sorted({*layout.void_ids, *cfg.void_ids}))
    else:
        dirs = {'--train-images': cfg.train_images, '--train-labels': cfg.train_labels,
                '--val-images': cfg.val_images, '--val-labels': cfg.val_labels}
        missing = [k for k, v in dirs.items() if not v]
        if missing:
            msg = f'--dataset folder needs {", ".join(missing)}'
            raise DatasetError(msg)
        classes = folder_classes(cfg.classes, cfg.num_classes)
        train_set = folder_samples(Path(cfg.train_images), Path(cfg.train_labels), cfg.label_suffix)
        val_set = folder_samples(Path(cfg.val_images), Path(cfg.val_labels), cfg.label_suffix)
        void_ids = cfg.void_ids
    if cfg.num_classes is not None and cfg.num_classes != classes.num_classes:
        msg = f'--num-classes {cfg.num_classes}: the {classes.name} classes number {classes.num_classes}'
        raise DatasetError(msg)
    train_set, held = split_holdout(train_set, cfg.holdout)
    val_set, held_val = split_holdout(val_set, cfg.holdout)
    holdout = held + held_val
    for sequence in cfg.holdout:
        if not any(s.image.name.startswith(sequence) for s in holdout):
            msg = f'--holdout-sequence {sequence}: no frame of the training or validation splits starts with it'
            raise DatasetError(msg)
    if not train_set:
        msg = f'--holdout-sequence {" ".join(cfg.holdout)}: leaves no training frame'
        raise DatasetError(msg)
    label_map = LabelMap(classes.num_classes, void_ids)
    check_samples(train_set, label_map, desc=f'checking {cfg.train_split}')
    check_samples(val_set, label_map, desc=f'checking {cfg.val_split}')
    check_samples(holdout, label_map, desc='checking held-out frames')
    return Data(classes, label_map, train_set, val_set, holdout)


# -------------------------------------------------------------------------------------------------------- state

def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        'torch': torch.get_rng_state(),
        'numpy': [np_state[0], np_state[1].tolist(), *np_state[2:]],  # plain lists: loadable with weights_only
        'python': [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    np_state = state['numpy']
    np.random.set_state((np_state[0], np.asarray(np_state[1], np.uint32), *np_state[2:]))
    random.setstate((state['python'][0], tuple(state['python'][1]), state['python'][2]))
    if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    # Augmentation draws from per-sample seeds; this only fixes anything else a worker might draw.
    import cv2

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(1)


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        msg = f'{path}: no such file (nothing to resume; start without --resume)'
        raise TrainError(msg)
    try:
        return read_payload(path, STATE_FORMAT, 'resume state', 'a resume state of rtformer train')
    except CheckpointError as err:
        raise TrainError(str(err)) from None


def saved_config(out: str | Path) -> TrainConfig:
    """The resolved options stored in ``<out>/last.pt``.

    Raises:
        TrainError: no or unreadable ``last.pt``.
    """
    path = Path(out) / LAST
    try:
        return TrainConfig.from_dict(_read_state(path)['config'])
    except TrainConfigError as err:
        msg = f'{path}: {err}'
        raise TrainError(msg) from None


def init_weights_from(model: RTFormer, path: str | Path) -> tuple[int, list[str]]:
    """Copy every tensor of checkpoint ``path`` whose name and shape match (PaddleSeg's pretrained rule).

    Returns:
        (tensors loaded, names of the model's tensors left at their initial values).

    Raises:
        TrainError: nothing matched.
    """
    source = load_checkpoint(path).model.state_dict()
    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not matched:
        msg = f'{path}: no tensor matches the model by name and shape'
        raise TrainError(msg)
    model.load_state_dict(matched, strict=False)
    return len(matched), sorted(set(target) - set(matched))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX, Arm BF16); emulated bf16 is slower
    than float32, so autocast stays off elsewhere."""
    try:
        info = Path('/proc/cpuinfo').read_text()
    except OSError:
        return False
    flags = set(' '.join(line.split(':', 1)[1] for line in info.splitlines()
                         if line.startswith(('flags', 'Features')) and ':' in line).split())
    return bool(flags & {'avx512_bf16', 'amx_bf16', 'bf16'})


def _select_device(name: str) -> torch.device:
    if name == 'cuda' and not torch.cuda.is_available():
        raise TrainError('--device cuda: no CUDA device is available')
    return torch.device('cuda' if name != 'cpu' and torch.cuda.is_available() else 'cpu')


# -------------------------------------------------------------------------------------------------------- trainer

@dataclass(frozen=True)
class TrainResult:
    """How a call to `train` ended."""

    iteration: int  # iterations done in total
    finished: bool  # reached cfg.iters (False: stopped by --stop-at / --time-limit)
    best_miou: float  # NaN before the first validation
    out: Path


class Trainer:
    """One run: builds everything from a resolved config and checked data; `fit` trains.

    Args:
        cfg: resolved options.
        data: checked samples.
        device: where to train.
        dist: this process's place under torchrun (default: the only process).
    """

    def __init__(self, cfg: TrainConfig, data: Data, device: torch.device, dist: Distributed | None = None) -> None:
        self.cfg, self.data, self.device = cfg, data, device
        self.dist = dist = dist or Distributed()
        _check_world(cfg, dist, device)
        self.out = Path(cfg.out)
        self.amp = cfg.amp and device.type == 'cuda'  # float16 + GradScaler
        self.bf16 = cfg.amp and device.type == 'cpu' and cpu_has_bf16()  # training steps only; no scaler needed
        options: dict[str, Any] = {'bn_momentum': cfg.bn_momentum}
        if cfg.drop_path_rate is not None:
            options['drop_path_rate'] = cfg.drop_path_rate
        try:
            self.model = build_rtformer(cfg.model, num_classes=data.classes.num_classes, **options)
        except ValueError as err:
            msg = f'--model {cfg.model}: {err}'
            raise TrainError(msg) from None
        if cfg.init:
            loaded, fresh = init_weights_from(self.model, cfg.init)
            shown = ', '.join(fresh[:4]) + (', ...' if len(fresh) > 4 else '')
            _log(f'init: {loaded} tensors from {cfg.init}' + (f'; {len(fresh)} left fresh: {shown}' if fresh else ''))
        self.model.to(device).train()
        self.net = dist.wrap(self.model, device, cfg.sync_bn)  # what training steps run: DDP under torchrun
        self.model = getattr(self.net, 'module', self.net)  # the network itself (SyncBatchNorm layers with --sync-bn)
        self.rank_digests: list[str] = []  # weights_digest of every process at the last save (torchrun)
        weight = None
        if cfg.class_weight == 'enet':
            weights = enet_weights(label_histogram(data.train, data.label_map))
            _log('class weights (enet): ' + ' '.join(
                f'{n[:8]}={w:.1f}' for n, w in zip(data.classes.names, weights, strict=True)))
            weight = torch.from_numpy(weights)
        self.loss = SegLoss(cfg.aux_weight, cfg.ohem, cfg.ohem_thresh, cfg.ohem_min_kept, weight).to(device)
        self.schedule = WarmupPoly(cfg.lr, cfg.iters, cfg.warmup_iters, cfg.warmup_start_lr, cfg.end_lr, cfg.power)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg.lr, cfg.head_lr_mult), lr=cfg.lr,
                                           betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.history = History(self.out / LOG, self.out / CURVES)
        self.iteration = 0
        self.best_miou = math.nan
        self.elapsed_before = 0.0  # wall seconds of earlier processes of this run
        self.started = time.monotonic()
        jitter = ColorJitter().scaled(cfg.jitter_strength) if cfg.jitter else None
        transform = TrainTransform(cfg.crop, scale_steps(*cfg.scale_range), cfg.flip, jitter, cfg.blur)
        self.train_set = SegmentationDataset(data.train, data.label_map, transform)
        # Scored sets in log order; best.pt is chosen on the first: the held-out sequences when there are any.
        self.eval_sets = {name: SegmentationDataset(samples, data.label_map)
                          for name, samples in (('holdout', data.holdout), ('val', data.val)) if samples}

    # ---------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {
            'format': STATE_FORMAT,
            'config': self.cfg.to_dict(),
            'iteration': self.iteration,
            'best_miou': self.best_miou,
            'elapsed': self.elapsed(),
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'scaler': self.scaler.state_dict(),
            'rng': _rng_state(),
            **({'world_size': self.dist.world, 'weights_sha256': self.rank_digests} if self.dist.active else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state['model'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        if self.amp and state['scaler']:
            self.scaler.load_state_dict(state['scaler'])
        self.iteration, self.best_miou, self.elapsed_before = state['iteration'], state['best_miou'], state['elapsed']
        _set_rng_state(state['rng'])

    def save_state(self) -> Path:
        path = self.out / LAST
        tmp = path.with_suffix('.tmp')
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: a crash mid-write never leaves a truncated last.pt
        return path

    # ---------------------------------------------------------------------------------------------- steps

    def _autocast(self, training: bool = False) -> torch.autocast:
        # bf16 only for training steps: validation stays float32 on CPU so that scores are exact and comparable.
        if training and self.bf16:
            return torch.autocast('cpu', dtype=torch.bfloat16)
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        """One optimizer update; returns (total loss, aux loss). A non-finite loss skips the update."""
        images = images.to(self.device, non_blocking=True)
        target = labels.to(self.device, non_blocking=True).long()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast(training=True):
            outputs = self.net(images)
        loss, aux = self.loss(outputs, target)
        # Under torchrun: the mean over the processes, so that all of them skip a non-finite step together.
        total, aux_value = self.dist.mean([loss.item(), aux.item()], self.device)
        if math.isfinite(total) or self.dist.active:  # every process must join DDP's gradient all-reduce
            self.scaler.scale(loss).backward()
        if math.isfinite(total):
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        return total, aux_value

    @torch.no_grad()
    def evaluate(self, loader: DataLoader) -> ConfusionMatrix:
        """Confusion matrix of the model (eval mode, full images, network at ``val_scale``) on ``loader``."""
        conf = ConfusionMatrix(self.data.classes.num_classes)
        self.dist.sync_buffers(self.model)
        self.model.eval()
        try:
            for images, labels in progress(loader, enabled=None if self.dist.main else False, desc='val', unit='img',
                                           leave=False):
                images = images.to(self.device, non_blocking=True)
                size = tuple(images.shape[2:])
                if self.cfg.val_scale != 1.0:
                    scaled = [max(MIN_INPUT_SIZE, round(v * self.cfg.val_scale)) for v in size]
                    images = resize(images, scaled)
                with self._autocast():
                    logits = self.model(images, out_size=size)
                pred = logits.argmax(1).to(torch.uint8).cpu().numpy()
                conf.update(labels.numpy(), pred)
        finally:
            self.model.train()
        conf.matrix[:] = self.dist.sum_counts(conf.matrix, self.device)  # each process scored its share
        return conf

    def _extra(self) -> dict[str, Any]:
        """What a saved checkpoint records of its run."""
        return {'recipe': self.cfg.recipe(), 'iteration': self.iteration, 'train_images': len(self.data.train),
                'holdout_sequences': list(self.cfg.holdout), 'holdout_images': len(self.data.holdout),
                'val_images': len(self.data.val)}

    def validate(self, loaders: dict[str, DataLoader]) -> dict[str, float]:
        """Score every evaluation set, keep ``best.pt`` if the first (held-out, else val) is the best so far;
        return the mIoU per set."""
        scores: dict[str, float] = {}
        names = self.data.classes.names
        for index, (name, loader) in enumerate(loaders.items()):
            conf = self.evaluate(loader)
            iou, miou = conf.iou, conf.miou
            miou = scores[name] = 0.0 if math.isnan(miou) else miou  # an empty set scores nothing
            per_class = {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)}
            if index == 0 and (math.isnan(self.best_miou) or miou > self.best_miou):
                self.best_miou = miou
                extra = {**self._extra(), 'selected_on': name, f'{name}_miou': miou, 'per_class_iou': per_class}
                if self.dist.main:
                    save_checkpoint(self.out / BEST, self.model, self.data.classes, extra=extra)
            best = f' (best {self.best_miou:.4f})' if index == 0 else ''
            shown = ' '.join(f'{n[:8]}={v:.2f}' for n, v in zip(names, iou, strict=True))
            _log(f'iter {self.iteration}: {name} mIoU {miou:.4f}{best} | {shown}')
        return scores

    # ---------------------------------------------------------------------------------------------- loop

    def _loaders(self) -> tuple[DataLoader, dict[str, DataLoader]]:
        cfg, cuda = self.cfg, self.device.type == 'cuda'
        stop = min(cfg.iters, cfg.stop_at or cfg.iters)
        batches = IterationBatches(len(self.train_set), cfg.batch_size, cfg.seed, self.iteration, stop,
                                   self.dist.rank, self.dist.world)
        # Workers are spawned, not forked: a fork of a process whose other threads hold locks (OpenCV's pool,
        # ROS or ORT threads of a host process) can deadlock in the child.
        common = dict(num_workers=cfg.workers, pin_memory=cuda, worker_init_fn=_seed_worker,
                      generator=torch.Generator().manual_seed(cfg.seed),
                      multiprocessing_context='spawn' if cfg.workers > 0 else None)
        train_loader = DataLoader(self.train_set, batch_sampler=batches, **common)
        eval_loaders = {name: DataLoader(self._share(data), batch_size=1, shuffle=False,
                                         persistent_workers=cfg.workers > 0, **common)
                        for name, data in self.eval_sets.items()}
        return train_loader, eval_loaders

    def _share(self, data: SegmentationDataset) -> SegmentationDataset | Subset:
        """This process's frames of an evaluation set: every world-th; the confusion matrices are summed."""
        if not self.dist.active:
            return data
        return Subset(data, range(self.dist.rank, len(data), self.dist.world))

    def elapsed(self) -> float:
        """Wall seconds this run has trained, over all its processes."""
        return self.elapsed_before + time.monotonic() - self.started

    def fit(self) -> TrainResult:
        """Train from ``self.iteration`` to ``cfg.iters`` (or the stop point), validating and saving on the way."""
        cfg = self.cfg
        train_loader, eval_loaders = self._loaders()
        self.started = time.monotonic()
        deadline = self.started + cfg.time_limit * 60 if cfg.time_limit else math.inf
        window: list[tuple[float, float]] = []
        bad_steps, saved_at = 0, -1
        lr = self.optimizer.param_groups[0]['lr']
        with progress(total=cfg.iters, initial=self.iteration, desc='train', unit='it',
                      enabled=None if self.dist.main else False) as bar:
            for images, labels in train_loader:
                lr = self.optimizer.param_groups[0]['lr']
                loss, aux = self.train_step(images, labels)
                bar.update(1)
                if math.isfinite(loss):
                    bad_steps = 0
                    window.append((loss, aux))
                    bar.set_postfix(loss=f'{loss:.3f}', lr=f'{lr:.2e}', refresh=False)
                elif (bad_steps := bad_steps + 1) >= MAX_BAD_STEPS:
                    msg = (f'loss is {loss} for {bad_steps} iterations in a row (at {self.iteration}, lr {lr:.3g}): '
                           f'training diverged; lower --lr, or resume from {self.out / LAST}')
                    raise TrainError(msg)
                validate = self.iteration % cfg.val_every == 0 or self.iteration == cfg.iters
                if validate or self.iteration % cfg.log_every == 0:
                    self._log_row(window, lr, self.validate(eval_loaders) if validate else {})
                if validate:
                    self._save()
                    saved_at = self.iteration
                # Under torchrun all processes stop at the step where the first one passes the time limit.
                if deadline < math.inf and self.dist.any(time.monotonic() > deadline, self.device):
                    break
        finished = self.iteration >= cfg.iters
        if finished:
            if self.dist.main:
                save_checkpoint(self.out / FINAL, self.model, self.data.classes, extra=self._extra())
        else:
            self._log_row(window, lr, {})
            if saved_at != self.iteration:
                self._save()
            _log(f'stopped at iteration {self.iteration} of {cfg.iters}; continue with --out {self.out} --resume')
        return TrainResult(self.iteration, finished, self.best_miou, self.out)

    def _log_row(self, window: list[tuple[float, float]], lr: float, scores: dict[str, float]) -> None:
        if not window and not scores or not self.dist.main:
            window.clear()
            return
        losses = np.asarray(window or [(math.nan, math.nan)])
        self.history.append(iter=self.iteration, loss=losses[:, 0].mean(), aux_loss=losses[:, 1].mean(), lr=lr,
                            val_miou=scores.get('val', math.nan), holdout_miou=scores.get('holdout', math.nan),
                            time=self.elapsed())
        window.clear()

    def _save(self) -> None:
        if self.dist.active:  # DDP keeps the processes in step; a difference here is a bug worth stopping for
            self.rank_digests = self.dist.gather(weights_digest(self.model))
            if len(set(self.rank_digests)) > 1:
                msg = (f'the {self.dist.world} processes hold different weights at iteration {self.iteration} '
                       f'(sha256 {", ".join(d[:12] for d in self.rank_digests)})')
                raise TrainError(msg)
        if self.dist.main:
            self.save_state()
            self.history.plot()


def _check_world(cfg: TrainConfig, dist: Distributed, device: torch.device) -> None:
    """Options that cannot work with this many processes on this device."""
    if not dist.active:
        return
    if cfg.sync_bn and device.type != 'cuda':
        raise TrainError("--sync-bn needs GPUs (torch's SyncBatchNorm runs on CUDA only); on CPUs leave it out: "
                         "each process then normalises over its own share of the batch")
    if cfg.batch_size % dist.world:
        msg = f'--batch-size {cfg.batch_size} is the global batch: it must split evenly over {dist.world} processes'
        raise TrainError(msg)
    if cfg.batch_size // dist.world < 2 and not cfg.sync_bn:
        msg = (f'--batch-size {cfg.batch_size} over {dist.world} processes leaves {cfg.batch_size // dist.world} '
               f'sample per process: BatchNorm needs 2 (raise --batch-size, or --sync-bn on GPUs)')
        raise TrainError(msg)


def _reseed(seed: int, rank: int, iteration: int) -> None:
    """Per-process torch RNG (stochastic depth) under torchrun: drawn from (seed, rank, iteration), so the processes
    differ from each other and a resumed run (whose last.pt holds rank 0's state) re-seeds the same way."""
    words = np.random.SeedSequence([seed, rank, iteration]).generate_state(2)
    torch.manual_seed(int(words[0]) << 32 | int(words[1]))


# -------------------------------------------------------------------------------------------------------- entry

def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Check the data, build the run (or restore it from ``<out>/last.pt``) and train.

    Args:
        cfg: resolved options (`TrainConfig.resolved`); on resume, the saved recipe with runtime overrides.
        resume: continue the run in ``cfg.out`` at the exact iteration, schedule position and RNG state.

    Raises:
        TrainError: the output directory already holds a run (without ``resume``) or none (with it),
            ``--stop-at`` already passed, or training diverged.
        DatasetError: bad data, raised before the model is built.
        CheckpointError: an unusable ``--init`` checkpoint.
    """
    out = Path(cfg.out)
    state = _read_state(out / LAST) if resume else None
    if state is None and (out / LAST).exists():
        msg = f'{out}: holds a run already ({LAST}); add --resume to continue it, or choose another --out'
        raise TrainError(msg)
    if state is not None and cfg.stop_at is not None and cfg.stop_at <= state['iteration']:
        msg = f'--stop-at {cfg.stop_at}: the run in {out} is already at iteration {state["iteration"]}'
        raise TrainError(msg)
    if cfg.init and not Path(cfg.init).is_file():
        msg = f'--init {cfg.init}: no such checkpoint'
        raise TrainError(msg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _select_device(cfg.device)
    try:
        dist = Distributed.from_env(device)  # under torchrun: join the process group (NCCL or gloo)
    except (RuntimeError, ValueError) as err:
        raise TrainError(f'torchrun: {err}') from None
    # No clean-up on an exception: torchrun stops the other processes, and leaving the group would wait for them.
    result = _train(cfg, state, dist.device(device), dist)
    dist.close()
    return result


def _train(cfg: TrainConfig, state: dict[str, Any] | None, device: torch.device, dist: Distributed) -> TrainResult:
    out = Path(cfg.out)
    data = load_data(cfg)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # fixed crop size: autotuned kernels pay off
    seed_everything(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, data, device, dist)
    if state is not None:
        trainer.load_state_dict(state)
    if dist.world > 1:
        _reseed(cfg.seed, dist.rank, trainer.iteration)
    if dist.main:
        trainer.history.start(resume_at=trainer.iteration if state is not None else None)
        (out / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + '\n')
    params = count_params(trainer.model) / 1e6
    held = f' / {len(data.holdout)} held out ({" ".join(cfg.holdout)})' if cfg.holdout else ''
    precision = ' (AMP fp16)' if trainer.amp else ' (bf16 autocast)' if trainer.bf16 else ''
    if dist.active:
        backend = 'NCCL' if device.type == 'cuda' else 'gloo'
        precision += (f'; {dist.world} process{"es" if dist.world > 1 else ""} ({backend}'
                      f'{", SyncBN" if cfg.sync_bn else ""}), {cfg.batch_size // dist.world} samples each')
    _log(f'{cfg.dataset}: {len(data.train)} train / {len(data.val)} val{held} images, '
         f'{data.classes.num_classes} classes; {cfg.model} {params:.2f} M params on {device.type}{precision}, '
         f'{torch.get_num_threads()} threads; '
         f'iterations {trainer.iteration}..{cfg.iters}, batch {cfg.batch_size}, crop {cfg.crop_text}; out {out}')
    return trainer.fit()
