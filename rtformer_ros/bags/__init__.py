"""Bag tools: offline evaluation from rosbags, dataset -> bag, replay through a live node.

The ``rtformer`` subcommands ``eval``, ``eval-merge``, ``bag-from-dataset`` and ``replay`` (`rtformer_ros.commands`)
stand on these modules: ``errors`` (``BagError``), ``reader``, ``writer``, ``dataset``, ``evaluate`` (one bag),
``fleet`` (many bags, shards), ``report``, ``replay`` (needs rclpy). Nothing here imports torch: a robot with
ONNX Runtime can evaluate.
"""
