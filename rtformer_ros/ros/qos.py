"""QoS profiles of the node's topics.

Inputs default to sensor data: best effort matches both best-effort and reliable camera publishers, and
depth 1 means DDS itself keeps only the newest frame (the worker wants nothing older). Outputs are reliable,
which best-effort and reliable subscribers (RViz, rqt defaults) both match; depth stays small so a slow
consumer never makes the node hold frames. ``class_info`` is latched (transient local) for late joiners.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ['CAMERA_INFO_DEPTH', 'INPUT_QOS', 'LATCHED_QOS', 'OUTPUT_QOS', 'input_profile']

INPUT_QOS: dict[str, ReliabilityPolicy] = {
    'sensor_data': ReliabilityPolicy.BEST_EFFORT,
    'reliable': ReliabilityPolicy.RELIABLE,
}
"""Values of the ``input_qos`` parameter -> reliability of the image subscriptions."""

CAMERA_INFO_DEPTH = 5
"""camera_info is tiny: keep a few so the one with an image's stamp is still there when the image is served."""

OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)

LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def input_profile(name: str, depth: int = 1) -> QoSProfile:
    """Subscription profile for ``input_qos`` value ``name`` ('sensor_data' or 'reliable')."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=INPUT_QOS[name],
                      durability=DurabilityPolicy.VOLATILE)
