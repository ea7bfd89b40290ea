"""Pixel losses with an ignore id: plain cross-entropy (the RTFormer recipe) and OHEM cross-entropy (an option).

Both average over the pixels they count, computed in float32 whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from rtformer_ros.classes import IGNORE_INDEX

__all__ = ['SegLoss', 'cross_entropy', 'ohem_cross_entropy']


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean cross-entropy over non-ignored pixels (0 when every pixel is ignored, where torch's mean is NaN).

    Args:
        logits: N x K x H x W.
        target: N x H x W int64 class ids.
        ignore_index: id contributing no loss.
    """
    total = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction='sum')
    return total / (target != ignore_index).sum().clamp(min=1)


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7, min_kept: int = 10_000,
                       ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Online hard example mining (PaddleSeg OhemCrossEntropyLoss): only pixels whose true-class probability is
    below ``thresh`` count, and at least the ``min_kept`` hardest ones (the threshold rises to keep them).

    Args:
        logits: N x K x H x W.
        target: N x H x W int64 class ids.
        thresh: probability under which a pixel is hard.
        min_kept: pixels kept at least (over the whole batch).
        ignore_index: id contributing no loss.
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
    return cross_entropy(logits, target, ignore_index)


class SegLoss(torch.nn.Module):
    """The training loss: main-head loss + ``aux_weight`` x aux-head loss.

    Args:
        aux_weight: coefficient of the aux head (0.4 in PaddleSeg).
        ohem: use `ohem_cross_entropy` instead of `cross_entropy`.
        ohem_thresh: see `ohem_cross_entropy`.
        ohem_min_kept: see `ohem_cross_entropy`.
    """

    def __init__(self, aux_weight: float = 0.4, ohem: bool = False, ohem_thresh: float = 0.7,
                 ohem_min_kept: int = 10_000) -> None:
        super().__init__()
        self.aux_weight = aux_weight
        self.ohem, self.ohem_thresh, self.ohem_min_kept = ohem, ohem_thresh, ohem_min_kept

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.ohem:
            return ohem_cross_entropy(logits, target, self.ohem_thresh, self.ohem_min_kept)
        return cross_entropy(logits, target)

    def forward(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (total loss, aux-head loss unweighted; zero without an aux head)."""
        main = self.pixel_loss(outputs[0], target)
        aux = self.pixel_loss(outputs[1], target) if len(outputs) > 1 else torch.zeros_like(main)
        return main + self.aux_weight * aux, aux
