"""ConfusionMatrix against per-class brute force on random and hand-made label maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import brute_force

from rtformer_ros.metrics import ConfusionMatrix


def test_scores_match_brute_force_over_several_frames() -> None:
    rng = np.random.default_rng(3)
    k = 7
    labels = [rng.integers(0, k, (31, 45)).astype(np.uint8) for _ in range(3)]
    preds = [np.where(rng.random(lab.shape) < 0.6, lab, rng.integers(0, k, lab.shape)).astype(np.uint8)
             for lab in labels]
    for lab in labels:
        lab[rng.random(lab.shape) < 0.1] = 255
    labels[0][labels[0] == 5] = 255  # class 5 only in predictions of frame 0 and elsewhere
    cm = ConfusionMatrix(k)
    for lab, pred in zip(labels, preds, strict=True):
        cm.update(lab, pred)
    expect = brute_force(labels, preds, k)
    np.testing.assert_allclose(cm.iou, expect['iou'])
    assert cm.miou == pytest.approx(expect['miou'])
    assert cm.pixel_accuracy == pytest.approx(expect['acc'])
    assert cm.fw_iou == pytest.approx(expect['fw'])
    assert cm.total == expect['pixels']


def test_class_absent_from_truth_and_prediction_is_nan_and_left_out_of_the_mean() -> None:
    label = np.array([[0, 0, 1, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1]], np.uint8)
    cm = ConfusionMatrix(4)
    cm.update(label, pred)
    iou = cm.iou
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == pytest.approx(2 / 3)
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert cm.miou == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert cm.pixel_accuracy == pytest.approx(3 / 4)
    assert cm.fw_iou == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    np.testing.assert_allclose(cm.normalized(), [[0.5, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_ignore_index_pixels_are_not_counted_whatever_the_prediction() -> None:
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(np.array([255, 255, 2], np.uint8), np.array([0, 1, 2], np.uint8))
    assert cm.total == 1 and cm.miou == 1.0


def test_out_of_range_ids_raise_and_leave_the_counts_alone() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match='label id 7 is outside 0..2'):
        cm.update(np.array([7, 1], np.uint8), np.array([1, 1], np.uint8))
    with pytest.raises(ValueError, match='prediction id 3'):
        cm.update(np.array([0, 1], np.uint8), np.array([3, 1], np.uint8))
    with pytest.raises(ValueError, match='shape'):
        cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    assert cm.total == 0


def test_empty_matrix_scores_are_nan_and_merge_adds_counts() -> None:
    cm = ConfusionMatrix(2)
    assert math.isnan(cm.miou) and math.isnan(cm.pixel_accuracy) and math.isnan(cm.fw_iou)
    other = ConfusionMatrix(2)
    other.update(np.array([0, 1], np.uint8), np.array([0, 0], np.uint8))
    cm.merge(other)
    cm.merge(other)
    np.testing.assert_array_equal(cm.matrix, [[2, 0], [2, 0]])
    with pytest.raises(ValueError, match='3-class'):
        cm.merge(ConfusionMatrix(3))
    with pytest.raises(ValueError, match='is a class id'):
        ConfusionMatrix(5, ignore_index=4)
    cm.reset()
    assert cm.total == 0
