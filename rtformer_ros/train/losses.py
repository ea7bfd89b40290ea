"""Pixel losses with an ignore id: plain cross-entropy (the RTFormer recipe) and OHEM cross-entropy (an option).

Both average over the pixels they count, computed in float32 whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rtformer_ros.classes import IGNORE_INDEX

__all__ = ['SegLoss', 'cross_entropy', 'enet_weights', 'ohem_cross_entropy']


def enet_weights(pixels: np.ndarray, c: float = 1.02) -> np.ndarray:
    """ENet's class weights ``1 / ln(c + p_class)`` from pixel counts (Paszke et al. 2016): rare classes such as
    Pole or SignSymbol weigh up to ~50, frequent ones ~3. A class with no pixels gets the largest weight, 1/ln(c)."""
    share = pixels / max(int(pixels.sum()), 1)
    return (1.0 / np.log(c + share)).astype(np.float32)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over non-ignored pixels (0 when every pixel is ignored, where torch's mean is NaN).

    Args:
        logits: N x K x H x W.
        target: N x H x W int64 class ids.
        ignore_index: id contributing no loss.
        weight: per-class weights (K,); the mean is then weighted by the target class, as torch's.
    """
    total = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index, reduction='sum')
    valid = target != ignore_index
    norm = valid.sum().float() if weight is None else weight[target[valid]].sum()
    return total / norm.clamp(min=1e-12)


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7, min_kept: int = 10_000,
                       ignore_index: int = IGNORE_INDEX, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Online hard example mining (PaddleSeg OhemCrossEntropyLoss): only pixels whose true-class probability is
    below ``thresh`` count, and at least the ``min_kept`` hardest ones (the threshold rises to keep them).

    Args:
        logits: N x K x H x W.
        target: N x H x W int64 class ids.
        thresh: probability under which a pixel is hard.
        min_kept: pixels kept at least (over the whole batch).
        ignore_index: id contributing no loss.
        weight: per-class weights of the kept pixels, see `cross_entropy`.
    """
    logits = logits.float()
    valid = target != ignore_index
    num_valid = int(valid.sum())
    if 0 < min_kept < num_valid:
        with torch.no_grad():
            prob = torch.softmax(logits, dim=1).gather(1, target.clamp(max=logits.shape[1] - 1).unsqueeze(1))
            prob = prob.squeeze(1)[valid]
            kth = torch.kthvalue(prob, min(min_kept, prob.numel())).values
            threshold = torch.maximum(kth, torch.tensor(thresh, device=prob.device))
            hard = torch.zeros_like(valid)
            hard[valid] = prob < threshold
        target = torch.where(hard, target, torch.full_like(target, ignore_index))
    return cross_entropy(logits, target, ignore_index, weight)


class SegLoss(torch.nn.Module):
    """The training loss: main-head loss + ``aux_weight`` x aux-head loss.

    Args:
        aux_weight: coefficient of the aux head (0.4 in PaddleSeg).
        ohem: use `ohem_cross_entropy` instead of `cross_entropy`.
        ohem_thresh: see `ohem_cross_entropy`.
        ohem_min_kept: see `ohem_cross_entropy`.
        class_weight: per-class weights (K,) or None (all 1).
    """

    def __init__(self, aux_weight: float = 0.4, ohem: bool = False, ohem_thresh: float = 0.7,
                 ohem_min_kept: int = 10_000, class_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.aux_weight = aux_weight
        self.ohem, self.ohem_thresh, self.ohem_min_kept = ohem, ohem_thresh, ohem_min_kept
        self.register_buffer('class_weight', class_weight, persistent=False)

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.ohem:
            return ohem_cross_entropy(logits, target, self.ohem_thresh, self.ohem_min_kept, weight=self.class_weight)
        return cross_entropy(logits, target, weight=self.class_weight)

    def forward(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (total loss, aux-head loss unweighted; zero without an aux head)."""
        main = self.pixel_loss(outputs[0], target)
        aux = self.pixel_loss(outputs[1], target) if len(outputs) > 1 else torch.zeros_like(main)
        return main + self.aux_weight * aux, aux
