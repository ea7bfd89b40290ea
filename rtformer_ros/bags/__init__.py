"""Bag tools: offline evaluation from rosbags, dataset -> bag, replay through a live node.

The ``rtformer`` subcommands ``eval``, ``eval-merge``, ``bag-from-dataset`` and ``replay`` (`rtformer_ros.commands`)
stand on these modules: ``reader``, ``writer``, ``dataset``, ``evaluate`` (one bag), ``fleet`` (many bags, shards),
``report``, ``replay`` (needs rclpy); their one exception is ``BagError``, here. Nothing here imports torch: a robot
with ONNX Runtime can evaluate.
"""

from rtformer_ros.errors import RtformerError

__all__ = ['BagError']


class BagError(RtformerError, RuntimeError):
    """A bag, topic, dataset or message cannot be used; the message names the path or topic and the problem."""
