"""Learning-rate schedule and parameter groups of PaddleSeg's RTFormer recipe.

Schedule: linear warm-up from ``warmup_start_lr`` to ``base_lr`` over ``warmup_iters``, then polynomial decay
to ``end_lr`` over the remaining ``iters - warmup_iters`` (Paddle LinearWarmup(PolynomialDecay)).
Groups: DAPPM and both heads learn at ``head_lr_mult`` x the rate (Paddle ``lr_mult = 10``); AdamW's decoupled
decay is ``lr * weight_decay``, so those parameters also decay 10x faster, as in Paddle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

__all__ = ['HEAD_PREFIXES', 'WarmupPoly', 'param_groups']

HEAD_PREFIXES = ('spp.', 'seghead.', 'seghead_extra.')
"""Parameters trained at the head learning rate (PaddleSeg RTFormer's ``lr_mult``)."""


@dataclass(frozen=True)
class WarmupPoly:
    """Learning rate at an iteration; calling it gives the factor for ``torch.optim.lr_scheduler.LambdaLR``.

    Args:
        base_lr: rate reached at the end of warm-up.
        iters: total iterations.
        warmup_iters: warm-up length (0: none).
        warmup_start_lr: rate at iteration 0.
        end_lr: rate the decay ends at.
        power: polynomial power (1.0: linear).
    """

    base_lr: float
    iters: int
    warmup_iters: int = 1500
    warmup_start_lr: float = 1e-6
    end_lr: float = 1e-6
    power: float = 1.0

    def lr(self, iteration: int) -> float:
        """Rate used by the update of ``iteration`` (0-based)."""
        if iteration < self.warmup_iters:
            return self.warmup_start_lr + (self.base_lr - self.warmup_start_lr) * iteration / self.warmup_iters
        decay_steps = max(self.iters - self.warmup_iters, 1)
        done = min(iteration - self.warmup_iters, decay_steps)
        return (self.base_lr - self.end_lr) * (1 - done / decay_steps) ** self.power + self.end_lr

    def __call__(self, iteration: int) -> float:
        return self.lr(iteration) / self.base_lr


def param_groups(model: nn.Module, lr: float, head_lr_mult: float = 10.0,
                 head_prefixes: Iterable[str] = HEAD_PREFIXES) -> list[dict]:
    """Two optimizer groups: the backbone at ``lr``, the head parameters at ``lr * head_lr_mult``.

    Weight decay applies to every parameter (PaddleSeg excludes none); set it on the optimizer.
    """
    prefixes = tuple(head_prefixes)
    base, head = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head if name.startswith(prefixes) else base).append(param)
    return [
        {'params': base, 'lr': lr, 'name': 'backbone'},
        {'params': head, 'lr': lr * head_lr_mult, 'name': 'head'},
    ]
