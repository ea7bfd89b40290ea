"""Topic names as image_transport forms them: the compressed input is the *resolved* ``image`` topic plus
``/compressed``, under ``ros2 run`` remaps and namespaces (what the launch file passes), and its QoS override
parameters are named after that resolved topic."""

from __future__ import annotations

import array
from pathlib import Path

import cv2
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import Probe, quadrants
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from rtformer_ros.ros.client import NodeProcess, diagnostic_values


def _jpeg(stamp: object) -> CompressedImage:
    ok, data = cv2.imencode('.jpg', quadrants(48, 64))
    assert ok
    return CompressedImage(header=Header(stamp=stamp, frame_id='cam'), format='jpeg',
                           data=array.array('B', data.tobytes()))


@pytest.mark.parametrize(('ros_args', 'params', 'subscribed', 'outputs', 'status'), [
    (['-r', 'image:=/cam/image_raw'], {}, '/cam/image_raw/compressed', '/segmentation', '/rtformer_node: image'),
    (['-r', '__ns:=/robot', '-r', 'image:=/cam/image_raw'], {}, '/cam/image_raw/compressed',
     '/robot/segmentation', '/robot/rtformer_node: image'),
    (['-r', '__ns:=/robot', '-r', 'image:=camera/image_raw'], {}, '/robot/camera/image_raw/compressed',
     '/robot/segmentation', '/robot/rtformer_node: image'),
    (['-r', '__ns:=/robot'], {'cameras': ['front']}, '/robot/front/image/compressed', '/robot/front/segmentation',
     '/robot/rtformer_node: front'),
    (['-r', 'front/image:=/cams/front/raw'], {'cameras': ['front']}, '/cams/front/raw/compressed',
     '/front/segmentation', '/rtformer_node: front'),
], ids=['remap', 'remap-namespace', 'relative-remap-namespace', 'camera-namespace', 'camera-remap'])
def test_node_subscribes_the_resolved_image_topic_plus_compressed(
        ros_args: list[str], params: dict, subscribed: str, outputs: str, status: str, tiny_model: Path,
        probe: Probe) -> None:
    params = {'model': tiny_model, 'input_transport': 'compressed', **params}
    with NodeProcess(ros_args=ros_args, params=params) as node:
        pub = probe.publisher(CompressedImage, subscribed, qos_profile_sensor_data)
        labels = probe.subscribe(Image, f'{outputs}/labels')
        diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics')
        try:
            probe.wait_for_subscribers(pub, timeout=30)
            (out,) = probe.exchange(pub, _jpeg, [labels])
            assert (out.height, out.width) == (48, 64)
            values = diagnostic_values(diagnostics.wait_for(lambda m: diagnostic_values(m, status) is not None),
                                       status)
            assert values['input_topic'] == subscribed
            node_name = status.split(':')[0]
            names = probe.list_parameters(node_name)
            assert f'qos_overrides.{subscribed}.subscription.reliability' in names
            assert f'listening on {subscribed}' in node.output
        finally:
            probe.unsubscribe(labels)
            probe.unsubscribe(diagnostics)
            probe.node.destroy_publisher(pub)


def test_node_qos_override_of_the_remapped_compressed_topic_applies(tiny_model: Path, probe: Probe) -> None:
    # reliable only matches reliable publishers: a best-effort one is not matched once the override applies.
    topic = '/cam/image_raw/compressed'
    args = ['-r', 'image:=/cam/image_raw', '-p', f'qos_overrides.{topic}.subscription.reliability:=reliable']
    with NodeProcess(ros_args=args, params={'model': tiny_model, 'input_transport': 'compressed'}) as node:
        probe.wait_until(lambda: probe.node.count_subscribers(topic) == 1, 30, f'a subscriber on {topic}')
        (info,) = probe.node.get_subscriptions_info_by_topic(topic)
        assert info.qos_profile.reliability.name == 'RELIABLE'
        assert node.alive()
