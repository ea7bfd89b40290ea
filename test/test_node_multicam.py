"""Two cameras in one node with compressed (JPEG/PNG) input and the default best-effort input QoS: each camera
on its own topics, both served while one floods, undecodable data dropped and counted."""

from __future__ import annotations

import array
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import Probe, interior, quadrant_labels, quadrants
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from rtformer_ros.ros.client import Inbox, NodeProcess, diagnostic_values
from rtformer_ros.ros.qos import LATCHED_QOS

CAMERAS = ('front', 'left')
FRONT = '/rtformer_node: front'
SIZE = (48, 64)


@pytest.fixture(scope='module')
def node(tiny_model: Path) -> Iterator[NodeProcess]:
    params = {'model': tiny_model, 'cameras': list(CAMERAS), 'input_transport': 'compressed'}
    with NodeProcess(params=params) as process:
        yield process


@pytest.fixture(scope='module')
def cams(probe: Probe) -> dict[str, tuple[object, Inbox[Image]]]:
    """Per camera: the compressed image publisher and the labels inbox."""
    out = {}
    for cam in CAMERAS:
        pub = probe.publisher(CompressedImage, f'{cam}/image/compressed', qos_profile_sensor_data)
        out[cam] = (pub, probe.subscribe(Image, f'{cam}/segmentation/labels'))
    for pub, _ in out.values():
        probe.wait_for_subscribers(pub)
    return out


def _compressed(rgb: np.ndarray, fmt: str, frame_id: str):
    ok, data = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', rgb[:, :, ::-1])
    assert ok
    payload = array.array('B', data.tobytes())

    def make(stamp: object) -> CompressedImage:
        return CompressedImage(header=Header(stamp=stamp, frame_id=frame_id), format=fmt, data=payload)
    return make


def _labels(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :msg.width]


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_node_serves_each_camera_on_its_own_topics(fmt: str, probe: Probe, cams: dict) -> None:
    rgb = quadrants(*SIZE)
    for cam in CAMERAS:
        pub, labels = cams[cam]
        (out,) = probe.exchange(pub, _compressed(rgb, fmt, f'{cam}_optical'), [labels])
        assert out.header.frame_id == f'{cam}_optical' and (out.height, out.width) == SIZE
        assert np.array_equal(interior(_labels(out), 4), interior(quadrant_labels(*SIZE), 4))
    for cam in CAMERAS:  # no cross-talk: a camera's labels only ever carry its own frames
        assert {m.header.frame_id for m in cams[cam][1].messages} == {f'{cam}_optical'}


def test_node_latches_class_info_per_camera(probe: Probe, cams: dict) -> None:
    for cam in CAMERAS:
        inbox = probe.subscribe(String, f'{cam}/segmentation/class_info', LATCHED_QOS)
        try:
            assert json.loads(inbox.wait_for(timeout=10).data)['dataset'] == 'camvid'
        finally:
            probe.unsubscribe(inbox)


def test_node_serves_a_camera_while_another_floods(probe: Probe, cams: dict) -> None:
    rgb = quadrants(*SIZE)
    flood_pub, _ = cams['front']
    make = _compressed(rgb, 'jpeg', 'front_optical')
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            flood_pub.publish(make(probe.next_stamp()))

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        pub, labels = cams['left']
        (out,) = probe.exchange(pub, _compressed(rgb, 'png', 'left_optical'), [labels], timeout=20)
        assert out.header.frame_id == 'left_optical'
    finally:
        stop.set()
        flooder.join()


def _png_with_broken_data() -> bytes:
    """A PNG whose header (signature, IHDR) is valid and whose image data is not."""
    ok, data = cv2.imencode('.png', quadrants(*SIZE))
    assert ok
    return data.tobytes()[:33] + bytes(range(200))


@pytest.mark.parametrize(('fmt', 'data', 'reason'), [
    ('jpeg', b'\xff\xd8\xff\xe0' + bytes(range(200)), 'JPEG data is corrupt: no marker at byte 5'),
    ('png', _png_with_broken_data(), 'cannot decode 233 bytes of png data'),
    ('jpeg', b'GIF89a' + bytes(100), 'data is neither JPEG nor PNG (starts with 47 49 46 38 39 61 00 00)'),
], ids=['jpeg-header', 'png-data', 'gif'])
def test_node_drops_undecodable_data_and_keeps_serving(fmt: str, data: bytes, reason: str, node: NodeProcess,
                                                       probe: Probe, cams: dict) -> None:
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics')
    pub, labels = cams['front']
    garbage = CompressedImage(header=Header(frame_id='bad'), format=fmt, data=array.array('B', data))
    try:
        before = int(diagnostic_values(diagnostics.wait_for(lambda m: diagnostic_values(m, FRONT) is not None),
                                       FRONT)['dropped_malformed'])
        pub.publish(garbage)
        probe.wait_until(lambda: f'/front/image/compressed: dropped frame: {reason}' in node.output, 10,
                         'the drop to be logged')
        msg = diagnostics.wait_for(
            lambda m: int((diagnostic_values(m, FRONT) or {}).get('dropped_malformed', 0)) > before)
        assert diagnostic_values(msg, '/rtformer_node: left')['dropped_malformed'] == '0'
        (out,) = probe.exchange(pub, _compressed(quadrants(*SIZE), 'jpeg', 'front_optical'), [labels])
        assert out.header.frame_id == 'front_optical'
        assert node.alive()
    finally:
        probe.unsubscribe(diagnostics)
