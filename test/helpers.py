"""Helpers shared by the ROS-free tests: the ``rtformer`` runner, flat-colour frames, the metric oracle, a CamVid
bag and the model card's figures. (Node tests share `ros_helpers`; the tiny ONNX model is `tiny_model`.)"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

IMAGE, LABELS = '/camera/image_raw', '/camera/labels'
MODELS = Path(__file__).resolve().parents[1] / 'models'


class CliResult(NamedTuple):
    rc: int
    out: str
    err: str


def rtformer(*argv: object) -> CliResult:
    """``rtformer ARGV`` through the console script's entry point (`rtformer_ros.cli.main`) in this process:
    the exit status, stdout and stderr. A usage error exits 2 as argparse does; any exception the command does
    not turn into one line propagates (with its traceback) and fails the test."""
    from rtformer_ros.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(arg) for arg in argv])
        except SystemExit as exit_:
            rc = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
    return CliResult(rc, out.getvalue(), err.getvalue())


def rtformer_error(*argv: object) -> str:
    """The one line ``rtformer ARGV`` prints (``rtformer <command>: ...``) when it fails with exit status 1."""
    result = rtformer(*argv)
    assert result.rc == 1, result
    (line,) = result.err.splitlines()
    assert line.startswith(f'rtformer {argv[0]}: '), line
    return line


def stripes(hw: tuple[int, int], *colours: tuple[int, int, int]) -> np.ndarray:
    """(H, W, 3) uint8 frame of equal vertical stripes, one per colour (one colour: a flat frame). The tiny
    model (test/tiny_model.py) segments red, green, blue and dark exactly."""
    image = np.empty((*hw, 3), np.uint8)
    for index, colour in enumerate(colours):
        image[:, index * hw[1] // len(colours):] = colour
    return image


def brute_force(labels: Sequence[np.ndarray], preds: Sequence[np.ndarray], k: int,
                ignore: int = 255) -> dict[str, object]:
    """The metric oracle: IoU per class, mIoU, pixel accuracy, fwIoU and pixels counted, by boolean masks per
    class and frame (no bincount, no confusion matrix)."""
    inter, union, truth = np.zeros(k), np.zeros(k), np.zeros(k)
    correct = counted = 0
    for label, pred in zip(labels, preds, strict=True):
        valid = label != ignore
        counted += int(valid.sum())
        correct += int(((label == pred) & valid).sum())
        for c in range(k):
            inter[c] += ((label == c) & (pred == c) & valid).sum()
            union[c] += (((label == c) | (pred == c)) & valid).sum()
            truth[c] += ((label == c) & valid).sum()
    iou = [inter[c] / union[c] if union[c] else math.nan for c in range(k)]
    fw = sum(truth[c] / counted * iou[c] for c in range(k) if truth[c])
    return {'iou': iou, 'miou': float(np.nanmean(iou)), 'acc': correct / counted, 'fw': fw, 'pixels': counted}


def camvid_bag(camvid_dir: Path, path: Path, frames: int, *, storage: str = 'sqlite3', compressed: bool = False,
               image_topic: str = IMAGE, label_topic: str = LABELS) -> Path:
    """The first ``frames`` CamVid val frames as bag-from-dataset writes them (``image_topic`` + ``/compressed``
    with ``compressed``)."""
    from rtformer_ros.bags.dataset import write_dataset_bag
    from rtformer_ros.datasets import find_samples

    samples, void = find_samples(camvid_dir, 'val')
    write_dataset_bag(samples[:frames], path, void=void, storage=storage, compressed=compressed,
                      image_topic=image_topic + ('/compressed' if compressed else ''), label_topic=label_topic,
                      progress=False)
    return path


def card_figure(name: str) -> float:
    """A figure models/README.md states on a line of its own as ``<name>: **<number>**``."""
    found = re.search(rf'^{re.escape(name)}: \*\*([0-9.]+)\*\*$', (MODELS / 'README.md').read_text(), re.M)
    assert found, f'models/README.md states no "{name}: **x**" figure'
    return float(found.group(1))


def card_command(output: str) -> tuple[str, list[str]]:
    """(source file, options) of the ``rtformer <command> SOURCE -o OUTPUT ...`` that models/README.md says made
    models/OUTPUT."""
    found = re.search(rf'`rtformer \w+ (\S+) -o {re.escape(output)} ([^`]*)`', (MODELS / 'README.md').read_text())
    assert found, f'models/README.md does not say how {output} was made'
    return found.group(1), found.group(2).split()


def camvid_val_miou(model: Path, camvid_dir: Path, providers: str = 'cpu') -> float:
    """mIoU of an exported model on the CamVid val split (void ignored), as training and the bags read it."""
    from rtformer_ros.datasets import LAYOUTS, LabelMap, read_sample
    from rtformer_ros.engine import SegmentationEngine
    from rtformer_ros.metrics import ConfusionMatrix

    camvid = LAYOUTS['camvid']
    label_map = LabelMap(11, camvid.void_ids)
    matrix = ConfusionMatrix(11)
    with SegmentationEngine(model, providers=providers, warmup=0) as engine:
        for sample in camvid.find(camvid_dir, 'val'):
            image, label = read_sample(sample, label_map)
            matrix.update(label, engine.infer(image, 'rgb').labels)
    return matrix.miou
