"""Self-describing checkpoints: architecture options, classes and weights in one ``.pt`` file.

Read with ``torch.load(weights_only=True)``: a checkpoint is plain data (dicts, lists, tensors), so loading one
never runs code from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from rtformer_ros.classes import ClassSet, get_classes
from rtformer_ros.errors import RtformerError, first_line
from rtformer_ros.model.rtformer import RTFormer, build_rtformer, variant_of

__all__ = ['FORMAT', 'Checkpoint', 'CheckpointError', 'load_checkpoint', 'read_payload', 'save_checkpoint']

FORMAT = 'rtformer_ros.checkpoint/1'


class CheckpointError(RtformerError, ValueError):
    """A checkpoint file is unreadable, not ours, or does not fit the model it describes."""


class Checkpoint(NamedTuple):
    """A loaded checkpoint: the model (eval mode, CPU, fp32), its classes and free-form metadata."""

    model: RTFormer
    classes: ClassSet
    extra: dict[str, Any]


def save_checkpoint(path: str | Path, model: RTFormer, classes: ClassSet, *, half: bool = False,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` with everything needed to rebuild it.

    Args:
        path: destination ``.pt``.
        model: the network; its ``cfg`` is stored.
        classes: names and palette (``num_classes`` must match the model).
        half: store floating-point weights as fp16 (half the size; loading casts back to fp32).
        extra: JSON-like metadata (training recipe, scores, source file).
    """
    if classes.num_classes != model.cfg.num_classes:
        msg = f'{classes.name} has {classes.num_classes} classes, the model {model.cfg.num_classes}'
        raise CheckpointError(msg)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    payload = {
        'format': FORMAT,
        'variant': variant_of(model.cfg),
        'config': model.cfg.to_dict(),
        'dataset': classes.name,
        'class_names': list(classes.names),
        'palette': [list(c) for c in classes.palette],
        'extra': dict(extra or {}),
        'state_dict': state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def read_payload(path: Path, fmt: str, what: str, expected: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a dict tagged ``'format': fmt`` (checkpoints, training state).

    Raises:
        CheckpointError: unreadable or truncated (``not a readable <what>``), or another kind of file
            (``not <expected>``).
    """
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many types for truncated/foreign files
        msg = f'{path}: not a readable {what} ({type(err).__name__}: {first_line(err, 160)})'
        raise CheckpointError(msg) from None
    if not isinstance(payload, dict) or payload.get('format') != fmt:
        msg = f'{path}: not {expected}'
        raise CheckpointError(msg)
    return payload


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the model a checkpoint describes and load its weights.

    Raises:
        CheckpointError: no such file, unreadable/truncated, not an rtformer_ros checkpoint, or weights that don't fit.
    """
    path = Path(path)
    if not path.is_file():
        msg = f'{path}: no such checkpoint'
        raise CheckpointError(msg)
    payload = read_payload(path, FORMAT, 'checkpoint',
                           'an rtformer_ros checkpoint (convert PaddleSeg weights with `rtformer convert`)')
    config = dict(payload['config'])
    try:
        model = build_rtformer(payload['variant'] if payload['variant'] != 'custom' else 'slim', **config)
    except (TypeError, ValueError) as err:
        msg = f'{path}: bad model config ({err})'
        raise CheckpointError(msg) from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload['state_dict'].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        msg = f'{path}: weights do not fit the described model ({str(err).splitlines()[1].strip()[:200]})'
        raise CheckpointError(msg) from None
    classes = ClassSet(payload['dataset'], tuple(payload['class_names']),
                       tuple(tuple(c) for c in payload['palette']))
    known = None
    try:
        known = get_classes(classes.name, classes.num_classes)
    except ValueError:
        pass
    return Checkpoint(model.eval(), known if known == classes else classes, payload.get('extra', {}))
