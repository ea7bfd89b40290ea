"""Hostile input to a running node process: decompression bombs (PNG, JPEG) and raw images whose header claims
more than their data; the node's peak memory (VmHWM) grows by less than 100 MB and the next good frame is served.

Each bomb is a few hundred bytes to 400 KB declaring 20000x20000 (400 MB to 1.2 GB decoded); before the header
check, one of them raised the node's peak RSS from ~200 MB to ~1 GB.
"""

from __future__ import annotations

import array
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import Probe, frame_message, jpeg_bomb, png_bomb, quadrants
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from rtformer_ros.ros.client import Inbox, NodeProcess, diagnostic_values

STATUS = '/rtformer_node: image'
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)  # every bomb is delivered
GROWTH_LIMIT_KB = 100 * 1024

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc/<pid>/status')



def _peak_rss_kb(node: NodeProcess) -> int:
    for line in Path(f'/proc/{node.process.pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1])
    msg = 'no VmHWM in /proc status'
    raise AssertionError(msg)


def _compressed(fmt: str, data: bytes):
    payload = array.array('B', data)

    def make(stamp: object) -> CompressedImage:
        return CompressedImage(header=Header(stamp=stamp, frame_id='cam'), format=fmt, data=payload)
    return make


def _raw(rgb: np.ndarray, **claims: int):
    def make(stamp: object) -> Image:
        msg = frame_message(rgb, 'rgb8')
        for name, value in claims.items():
            setattr(msg, name, value)
        msg.header = Header(stamp=stamp, frame_id='cam')
        return msg
    return make


def _good_jpeg():
    ok, data = cv2.imencode('.jpg', quadrants(48, 64)[:, :, ::-1])
    assert ok
    return _compressed('jpeg', data.tobytes())


def _attack(node: NodeProcess, probe: Probe, pub: object, labels: Inbox[Image], good, bombs: dict) -> None:
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics')
    try:
        probe.exchange(pub, good, [labels], timeout=30)  # warmed up: the baseline includes serving a frame
        before = _peak_rss_kb(node)
        dropped = int(diagnostic_values(diagnostics.wait_for(lambda m: diagnostic_values(m, STATUS) is not None),
                                        STATUS)['dropped_malformed'])
        for reason, make in bombs.items():
            pub.publish(make(probe.next_stamp()))
            dropped += 1
            diagnostics.wait_for(lambda m, n=dropped: int((diagnostic_values(m, STATUS) or {}).get(
                'dropped_malformed', -1)) >= n, timeout=20)
            probe.wait_until(lambda r=reason: f'dropped frame: {r}' in node.output, 10, f'log line {reason!r}')
        (out,) = probe.exchange(pub, good, [labels], timeout=30)
        assert (out.height, out.width) == (48, 64)
        growth = _peak_rss_kb(node) - before
        assert growth < GROWTH_LIMIT_KB, f'peak RSS grew by {growth / 1024:.0f} MB'
        assert node.alive()
    finally:
        probe.unsubscribe(diagnostics)


def test_node_rejects_png_and_jpeg_bombs_without_allocating_them(tiny_model: Path, probe: Probe) -> None:
    params = {'model': tiny_model, 'input_transport': 'compressed', 'input_qos': 'reliable'}
    declared = '20000x20000 = 400000000 pixels is more than max_pixels=16777216'
    bombs = {f'png header declares {declared}': _compressed('png', png_bomb(20000, 20000)),
             f'jpeg header declares {declared}': _compressed('jpeg', jpeg_bomb(20000, 20000)),
             f'jpeg header declares 65535x65535 = {65535 ** 2} pixels': _compressed('jpeg', jpeg_bomb(65535, 65535))}
    with NodeProcess(params=params) as node:
        pub = probe.publisher(CompressedImage, 'image/compressed', RELIABLE)
        labels = probe.subscribe(Image, 'segmentation/labels')
        try:
            probe.wait_for_subscribers(pub, timeout=30)
            _attack(node, probe, pub, labels, _good_jpeg(), bombs)
        finally:
            probe.unsubscribe(labels)
            probe.node.destroy_publisher(pub)


def test_node_rejects_raw_images_whose_header_claims_more_than_their_data(tiny_model: Path,
                                                                           probe: Probe) -> None:
    params = {'model': tiny_model, 'input_qos': 'reliable'}
    small = quadrants(8, 8)  # 192 bytes of data under every claim
    bombs = {'100000x100000 = 10000000000 pixels is more than max_pixels': _raw(small, width=100000, height=100000,
                                                                              step=300000),
             'data has 192 bytes, step 12000 x 4000 rows needs 48000000': _raw(small, width=4000, height=4000,
                                                                                step=12000),
             'data has 192 bytes, step 1000000000 x 8 rows needs 8000000000': _raw(small, step=10 ** 9)}
    with NodeProcess(params=params) as node:
        pub = probe.publisher(Image, 'image', RELIABLE)
        labels = probe.subscribe(Image, 'segmentation/labels')
        try:
            probe.wait_for_subscribers(pub, timeout=30)
            _attack(node, probe, pub, labels, _raw(quadrants(48, 64)), bombs)
        finally:
            probe.unsubscribe(labels)
            probe.node.destroy_publisher(pub)
