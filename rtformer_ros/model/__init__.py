"""RTFormer in PyTorch (weight-compatible with PaddleSeg) and its checkpoints. Knows nothing of ROS or ORT."""

from rtformer_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rtformer_ros.model.rtformer import PRESETS, VARIANTS, RTFormer, RTFormerCfg, build_rtformer

__all__ = [
    'PRESETS',
    'VARIANTS',
    'CheckpointError',
    'RTFormer',
    'RTFormerCfg',
    'build_rtformer',
    'load_checkpoint',
    'save_checkpoint',
]
