"""ROS 2 side of rtformer_ros: the ``rtformer_node`` and what only it and its clients use.

Modules: ``params`` (the node's parameter table), ``qos`` (profiles), ``diagnostics`` (counters, health and
/diagnostics), ``slots`` (latest-frame hand-off to the worker), ``segmenter`` (the node's work: subscriptions,
worker, outputs), ``node`` (the plain node and ``main``), ``lifecycle`` (the managed node), ``client``
(``StampedClient``: publishes frames under a stamp and collects the outputs that carry it, for replay, the demo,
benchmarks and tests). Message <-> array conversion and rendering are ROS-free and live in ``rtformer_ros.image``.
Nothing here imports torch.
"""
