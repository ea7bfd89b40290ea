"""The model shipped in models/: loads, describes itself as CamVid, and scores what its model card says."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2

from rtformer_ros.classes import IGNORE_INDEX, get_classes
from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.metrics import ConfusionMatrix

MODELS = Path(__file__).resolve().parents[1] / 'models'
ONNX = MODELS / 'rtformer_slim_camvid_360x480.onnx'
CHECKPOINT = MODELS / 'rtformer_slim_camvid.pt'



def _card_miou() -> float:
    card = (MODELS / 'README.md').read_text()
    found = re.search(r'val mIoU \(ONNX Runtime, 101 frames\): \*\*([0-9.]+)\*\*', card)
    assert found, 'models/README.md states no "val mIoU (ONNX Runtime, 101 frames): **x**" figure'
    return float(found.group(1))


def test_shipped_onnx_has_the_camvid_metadata():
    with SegmentationEngine(ONNX, providers='cpu', warmup=0) as engine:
        meta = engine.metadata
    camvid = get_classes('camvid')
    assert (meta.variant, meta.dataset, meta.input_size) == ('slim', 'camvid', (360, 480))
    assert meta.class_names == camvid.names and meta.palette == camvid.palette


def test_shipped_checkpoint_loads_as_slim_camvid():
    from rtformer_ros.model import load_checkpoint

    ckpt = load_checkpoint(CHECKPOINT)
    assert ckpt.classes.name == 'camvid' and ckpt.model.cfg.num_classes == 11


def test_shipped_onnx_is_the_shipped_checkpoint_exported_as_the_card_says(tmp_path):
    from rtformer_ros.cli import main

    card = (MODELS / 'README.md').read_text()
    found = re.search(r'`rtformer export rtformer_slim_camvid\.pt -o rtformer_slim_camvid_360x480\.onnx ([^`]*)`', card)
    assert found, 'models/README.md does not say how the ONNX file was exported'
    again = tmp_path / ONNX.name
    assert main(['export', str(CHECKPOINT), '-o', str(again), *found.group(1).split()]) == 0
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(ONNX.read_bytes()).digest()


def test_shipped_onnx_scores_the_model_card_val_miou(camvid_dir):
    matrix = ConfusionMatrix(11, ignore_index=IGNORE_INDEX)
    with SegmentationEngine(ONNX, providers='cpu', warmup=0) as engine:
        for image_path in sorted((camvid_dir / 'val').glob('*.png')):
            label = cv2.imread(str(camvid_dir / 'valannot' / image_path.name), cv2.IMREAD_UNCHANGED)
            label[label == 11] = IGNORE_INDEX  # CamVid void
            frame = cv2.imread(str(image_path))
            matrix.update(label, engine.infer(frame, color_order='bgr').labels)
    assert abs(matrix.miou - _card_miou()) <= 0.01
