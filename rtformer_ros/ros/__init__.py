"""ROS 2 side of rtformer_ros: the ``rtformer_node`` and its small helpers.

Modules: ``codec`` (sensor_msgs <-> numpy), ``params`` (the node's parameter table), ``qos`` (profiles),
``diagnostics`` (counters, health and /diagnostics), ``slots`` (latest-frame hand-off to the worker),
``segmenter`` (the node's work: subscriptions, worker, outputs), ``node`` (the plain node and ``main``),
``lifecycle`` (the managed node), ``probe`` (a client that feeds a node and collects its outputs, for tests and
benchmarks). Nothing here imports torch.
"""
