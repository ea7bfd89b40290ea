"""The model shipped in models/: loads, describes itself as CamVid, and scores what its model card says."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

from helpers import camvid_val_miou, card_command, card_figure

from rtformer_ros.classes import get_classes
from rtformer_ros.engine import SegmentationEngine

MODELS = Path(__file__).resolve().parents[1] / 'models'
ONNX = MODELS / 'rtformer_slim_camvid_360x480.onnx'
CHECKPOINT = MODELS / 'rtformer_slim_camvid.pt'


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


def test_shipped_checkpoint_is_the_last_iteration_of_the_card_recipe_on_train_val():
    from rtformer_ros.cli import build_parser
    from rtformer_ros.model import load_checkpoint
    from rtformer_ros.train.command import config_from_args

    extra = load_checkpoint(CHECKPOINT).extra
    card = (MODELS / 'README.md').read_text().split('## Recipe', 1)[1]
    command = re.search(r'^rtformer train .*?[^\\]$', card, re.M | re.S).group(0).replace('\\\n', ' ')
    recipe = config_from_args(build_parser().parse_args(shlex.split(command)[1:])).recipe()
    ignored = ('data_root', 'out')
    assert {k: v for k, v in recipe.items() if k not in ignored} == \
        {k: v for k, v in extra['recipe'].items() if k not in ignored}
    # Every frame trained on and the weights of the last iteration: nothing was chosen on trained-on data.
    assert (recipe['train_split'], recipe['val_split'], recipe['holdout']) == ('train+val', 'none', [])
    assert extra['iteration'] == recipe['iters'] and 'val_miou' not in extra
    assert extra['chosen_on']['holdout_sequences'] == ['0006R0']


def test_shipped_onnx_is_the_shipped_checkpoint_exported_as_the_card_says(tmp_path):
    from rtformer_ros.cli import main

    source, options = card_command(ONNX.name)
    assert source == CHECKPOINT.name
    again = tmp_path / ONNX.name
    assert main(['export', str(MODELS / source), '-o', str(again), *options]) == 0
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(ONNX.read_bytes()).digest()


def test_shipped_onnx_scores_the_model_card_val_miou(camvid_dir):
    assert abs(camvid_val_miou(ONNX, camvid_dir) - card_figure('val mIoU (ONNX Runtime, 101 frames)')) <= 0.01
