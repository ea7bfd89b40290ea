"""Semantic segmentation scores from a confusion matrix: IoU, mIoU, pixel accuracy, frequency-weighted IoU.

NumPy only (no torch, no ROS): the bag evaluator on a robot and the training loop share it.

Conventions (as in PaddleSeg and mmseg): rows are ground truth, columns prediction; pixels whose label is the
ignore index are not counted; a class absent from both ground truth and prediction has IoU NaN and is left out
of the mean.
"""

from __future__ import annotations

import numpy as np

from rtformer_ros.classes import IGNORE_INDEX

__all__ = ['ConfusionMatrix']


class ConfusionMatrix:
    """A K x K pixel count of (ground truth, prediction) pairs, accumulated frame by frame.

    Example::

        cm = ConfusionMatrix(11)
        for label, pred in frames:
            cm.update(label, pred)
        print(cm.miou, cm.pixel_accuracy)

    Attributes:
        num_classes: K.
        ignore_index: label id that is not counted.
        matrix: (K, K) int64 counts, rows = ground truth, columns = prediction.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        """Start from zero counts.

        Args:
            num_classes: number of classes K (ids 0..K-1).
            ignore_index: label id to skip; must not be a class id.

        Raises:
            ValueError: K < 1, or the ignore index lies inside 0..K-1.
        """
        if num_classes < 1:
            msg = f'num_classes must be >= 1, got {num_classes}'
            raise ValueError(msg)
        if 0 <= ignore_index < num_classes:
            msg = f'ignore_index {ignore_index} is a class id (0..{num_classes - 1})'
            raise ValueError(msg)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, label: np.ndarray, pred: np.ndarray) -> None:
        """Add one frame (or a batch: any shape, as long as both match).

        Args:
            label: ground-truth class ids (any integer dtype); ``ignore_index`` pixels are skipped.
            pred: predicted class ids, same shape.

        Raises:
            ValueError: shapes differ, or an id outside 0..K-1 (other than ignore in the label); nothing is added.
        """
        if label.shape != pred.shape:
            msg = f'label shape {label.shape} differs from prediction shape {pred.shape}'
            raise ValueError(msg)
        keep = label != self.ignore_index
        gt = label[keep].astype(np.int64, copy=False)
        pr = pred[keep].astype(np.int64, copy=False)
        k = self.num_classes
        if gt.size:
            for name, ids in (('label', gt), ('prediction', pr)):
                low, high = int(ids.min()), int(ids.max())
                if low < 0 or high >= k:
                    bad = high if high >= k else low
                    msg = (f'{name} id {bad} is outside 0..{k - 1}'
                           + (f' (ignore index {self.ignore_index})' if name == 'label' else ''))
                    raise ValueError(msg)
        # One bincount over flat (gt, pred) pair codes: O(pixels), no per-class passes.
        self.matrix += np.bincount(gt * k + pr, minlength=k * k).reshape(k, k)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts (e.g. from another worker or data loader).

        Raises:
            ValueError: the class counts differ.
        """
        if other.matrix.shape != self.matrix.shape:
            msg = f'cannot merge a {other.num_classes}-class matrix into a {self.num_classes}-class one'
            raise ValueError(msg)
        self.matrix += other.matrix

    def reset(self) -> None:
        """Back to zero counts."""
        self.matrix[:] = 0

    @property
    def total(self) -> int:
        """Counted (non-ignored) pixels."""
        return int(self.matrix.sum())

    @property
    def iou(self) -> np.ndarray:
        """(K,) float64 intersection over union per class; NaN where a class is in neither GT nor prediction."""
        conf = self.matrix.astype(np.float64)
        inter = np.diag(conf)
        union = conf.sum(axis=0) + conf.sum(axis=1) - inter
        with np.errstate(divide='ignore', invalid='ignore'):
            return np.where(union > 0, inter / union, np.nan)

    @property
    def miou(self) -> float:
        """Mean IoU over the classes present in GT or prediction; NaN when nothing was counted."""
        iou = self.iou
        present = ~np.isnan(iou)
        return float(iou[present].mean()) if present.any() else float('nan')

    @property
    def pixel_accuracy(self) -> float:
        """Correct pixels / counted pixels; NaN when nothing was counted."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float('nan')

    @property
    def class_accuracy(self) -> np.ndarray:
        """(K,) recall per class (correct / GT pixels of the class); NaN for classes absent from GT."""
        gt = self.matrix.sum(axis=1).astype(np.float64)
        with np.errstate(divide='ignore', invalid='ignore'):
            return np.where(gt > 0, np.diag(self.matrix) / gt, np.nan)

    @property
    def fw_iou(self) -> float:
        """Frequency-weighted IoU: IoU of each class weighted by its share of GT pixels; NaN when empty."""
        total = self.total
        if not total:
            return float('nan')
        freq = self.matrix.sum(axis=1) / total
        present = freq > 0  # a class with GT pixels always has a defined IoU
        return float((freq[present] * self.iou[present]).sum())

    def normalized(self) -> np.ndarray:
        """(K, K) float64 row-normalised matrix (each GT class sums to 1; rows of absent classes are 0)."""
        rows = self.matrix.sum(axis=1, keepdims=True).astype(np.float64)
        return np.divide(self.matrix, rows, out=np.zeros(self.matrix.shape), where=rows > 0)
