"""Health a robot can act on, laziness and remote viewing, on one node process in namespace /front:

- diagnostics named by the node's full name and camera, hardware_id the camera frame;
- WARN on stale input, on header stamps lagging the node clock, and outside the out-of-domain confidence band;
- camera_info too far from the image stamp or of another size is not forwarded (counted);
- no subscriber to any output: no inference (counted as skipped); ``enabled`` pauses and resumes;
- colour and overlay as JPEG on ``.../compressed``, built only while subscribed, ``jpeg_quality`` at runtime.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import Probe, frame_message, interior, quadrant_labels, quadrants
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from rtformer_ros.classes import get_classes
from rtformer_ros.image.codec import JPEG_FORMAT
from rtformer_ros.ros.client import ClientError, Inbox, NodeProcess, diagnostic_values

NODE = '/front/rtformer_node'
STATUS = '/front/rtformer_node: image'
SIZE = (48, 64)
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
DEFAULTS = {'stale_after': 30.0, 'max_stamp_lag': 0.0, 'ood_window': 0, 'ood_min_confidence': 0.0,
            'ood_max_low_share': 1.0, 'enabled': True, 'jpeg_quality': 80}


@pytest.fixture(scope='module')
def node(tiny_model: Path) -> Iterator[NodeProcess]:
    params = {'model': tiny_model, 'input_qos': 'reliable', 'camera_info_max_age': 0.5, **DEFAULTS}
    with NodeProcess(ros_args=['-r', '__ns:=/front'], params=params) as process:
        yield process


@pytest.fixture(scope='module')
def image_pub(probe: Probe, node: NodeProcess) -> object:
    publisher = probe.publisher(Image, '/front/image', RELIABLE)
    probe.wait_for_subscribers(publisher, timeout=30)
    return publisher


@pytest.fixture
def diagnostics(probe: Probe, node: NodeProcess) -> Iterator[Inbox[DiagnosticArray]]:
    inbox = probe.subscribe(DiagnosticArray, '/diagnostics')
    yield inbox
    probe.unsubscribe(inbox)
    probe.set_parameters(NODE, DEFAULTS)  # whatever a test changed


@pytest.fixture
def listen(probe: Probe) -> Iterator[Callable[..., Inbox]]:
    """Subscribe to outputs for one test: listen(Image, 'labels')."""
    inboxes: list[Inbox] = []

    def subscribe(msg_type: type, name: str) -> Inbox:
        inboxes.append(probe.subscribe(msg_type, f'/front/segmentation/{name}'))
        return inboxes[-1]
    yield subscribe
    for inbox in inboxes:
        probe.unsubscribe(inbox)


def _frame(rgb: np.ndarray, frame_id: str = 'front_optical', stamp: object = None):
    def make(probe_stamp: object) -> Image:
        msg = frame_message(rgb, 'rgb8')
        msg.header = Header(stamp=stamp or probe_stamp, frame_id=frame_id)
        return msg
    return make


def _status(diagnostics: Inbox[DiagnosticArray], predicate: Callable[[dict[str, str]], bool] = lambda _: True,
            timeout: float = 10.0) -> dict[str, str]:
    """Our status from a report received after this call that satisfies ``predicate``."""
    diagnostics.clear()
    msg = diagnostics.wait_for(lambda m: (v := diagnostic_values(m, STATUS)) is not None and predicate(v), timeout)
    return diagnostic_values(msg, STATUS)


def _send(probe: Probe, pub: object, count: int) -> None:
    """``count`` frames, apart: the input's depth-1 queue would keep only the last of a burst."""
    for _ in range(count):
        pub.publish(_frame(quadrants(*SIZE))(probe.next_stamp()))
        time.sleep(0.3)


def _set(probe: Probe, **values: object) -> None:
    results = probe.set_parameters(NODE, values)
    assert all(r.successful for r in results), [r.reason for r in results]


def test_status_is_named_by_the_node_and_camera_with_the_frame_as_hardware_id(
        probe: Probe, image_pub: object, diagnostics: Inbox[DiagnosticArray], listen) -> None:
    labels = listen(Image, 'labels')
    probe.exchange(image_pub, _frame(quadrants(*SIZE), frame_id='front_cam_optical'), [labels])
    diagnostics.clear()
    array = diagnostics.wait_for(lambda m: diagnostic_values(m, STATUS) is not None)
    (status,) = [s for s in array.status if s.name == STATUS]
    assert status.hardware_id == 'front_cam_optical'
    values = diagnostic_values(array, STATUS)
    assert values['input_topic'] == '/front/image' and values['provider'] == 'CPUExecutionProvider'


def test_warns_when_no_frame_arrives_for_stale_after(
        probe: Probe, image_pub: object, diagnostics: Inbox[DiagnosticArray], listen) -> None:
    labels = listen(Image, 'labels')
    probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])
    assert _status(diagnostics)['level'] == '0'
    _set(probe, stale_after=0.5)
    stale = _status(diagnostics, lambda v: v['level'] == '1')
    assert stale['message'].startswith('no frame for ') and float(stale['seconds_since_frame']) > 0.5
    probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])  # frames again: OK again
    _set(probe, stale_after=30.0)
    assert _status(diagnostics)['level'] == '0'


def test_warns_when_header_stamps_lag_the_node_clock(
        probe: Probe, image_pub: object, diagnostics: Inbox[DiagnosticArray], listen) -> None:
    labels = listen(Image, 'labels')
    _set(probe, max_stamp_lag=1.0)
    probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])  # the probe's stamps are from 1970
    lagging = _status(diagnostics, lambda v: v['level'] == '1')
    assert 'header stamps behind the node clock by' in lagging['message'] and '(use_sim_time?)' in lagging['message']
    assert float(lagging['stamp_lag_s']) > 1e9
    # Stamps from the clock the node uses: no warning once a report covers only those.
    deadline = time.monotonic() + 20
    while True:
        now = probe.node.get_clock().now().to_msg()
        image_pub.publish(_frame(quadrants(*SIZE), stamp=now)(now))
        try:
            current = _status(diagnostics, timeout=1.5)
        except ClientError:
            continue
        if current['stamp_lag_s'] != 'nan' and abs(float(current['stamp_lag_s'])) < 1.0 or time.monotonic() > deadline:
            break
    assert abs(float(current['stamp_lag_s'])) < 1.0 and 'header stamps' not in current['message']


def _publish_info(probe: Probe, pub: object, stamp: object, width: int, height: int, binning: int = 0) -> None:
    info = CameraInfo(header=Header(stamp=stamp, frame_id='info'), width=width, height=height, binning_x=binning,
                      binning_y=binning)
    pub.publish(info)


def test_camera_info_is_forwarded_only_when_recent_and_of_the_image_size(
        probe: Probe, image_pub: object, diagnostics: Inbox[DiagnosticArray], listen) -> None:
    info_pub = probe.publisher(CameraInfo, '/front/camera_info', RELIABLE)
    labels, infos = listen(Image, 'labels'), listen(CameraInfo, 'camera_info')
    rgb = quadrants(*SIZE)
    try:
        probe.wait_for_subscribers(info_pub)
        dropped = int(_status(diagnostics)['dropped_camera_info'])
        cases = [  # (info size and binning, seconds between the info and the image stamp, forwarded)
            ((64, 48, 0), 0, True),
            ((128, 96, 2), 0, True),  # a binned camera: full sensor size / binning = image size
            ((64, 48, 0), 2, False),  # the camera_info topic stopped two seconds ago
            ((32, 24, 0), 0, False),  # of another camera, or another resolution
        ]
        for (width, height, binning), gap, forwarded in cases:
            info_stamp = probe.next_stamp()
            for _ in range(gap):
                probe.next_stamp()
            _publish_info(probe, info_pub, info_stamp, width, height, binning)
            time.sleep(0.3)  # other topic: let the info arrive first
            image_stamp = probe.next_stamp() if gap else info_stamp
            image_pub.publish(_frame(rgb, stamp=image_stamp)(image_stamp))
            labels.wait_for(lambda m, s=image_stamp: m.header.stamp == s)
            if forwarded:
                info = infos.wait_for(lambda m, s=image_stamp: m.header.stamp == s)
                assert (info.width, info.height, info.header.frame_id) == (width, height, 'front_optical')
            else:
                dropped += 1
                values = _status(diagnostics, lambda v, n=dropped: int(v['dropped_camera_info']) >= n)
                assert int(values['dropped_camera_info']) == dropped
                assert not [m for m in infos.messages if m.header.stamp == image_stamp]
    finally:
        probe.node.destroy_publisher(info_pub)


def test_no_inference_without_a_subscriber_and_enabled_pauses(
        probe: Probe, image_pub: object, diagnostics: Inbox[DiagnosticArray], listen) -> None:
    outputs = ('labels', 'color', 'color/compressed', 'overlay', 'overlay/compressed', 'confidence', 'camera_info')
    probe.wait_until(lambda: all(probe.node.count_subscribers(f'/front/segmentation/{name}') == 0
                                 for name in outputs), 10, 'no subscriber on any output')
    before = _status(diagnostics)
    _send(probe, image_pub, 3)
    after = _status(diagnostics, lambda v: int(v['skipped']) >= int(before['skipped']) + 3)
    assert after['served'] == before['served']
    assert int(after['received']) - int(before['received']) == 3

    labels = listen(Image, 'labels')
    probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])  # a subscriber: served
    _set(probe, enabled=False)
    paused = _status(diagnostics)
    labels.clear()
    _send(probe, image_pub, 3)
    paused = _status(diagnostics, lambda v: int(v['skipped']) >= int(paused['skipped']) + 3)
    assert paused['message'] == 'paused (enabled is false)' and paused['enabled'] == 'false'
    assert not labels.messages
    _set(probe, enabled=True)
    probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])


def _decode_jpeg(msg: CompressedImage) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_colour_and_overlay_jpegs_are_built_only_while_subscribed(
        probe: Probe, image_pub: object, diagnostics: Inbox[DiagnosticArray], listen) -> None:
    rgb = quadrants(*SIZE)
    before = _status(diagnostics)
    color, overlay = listen(CompressedImage, 'color/compressed'), listen(CompressedImage, 'overlay/compressed')
    color_jpeg, overlay_jpeg = probe.exchange(image_pub, _frame(rgb), [color, overlay])
    assert color_jpeg.format == overlay_jpeg.format == JPEG_FORMAT
    assert color_jpeg.header.frame_id == 'front_optical'
    palette = np.array(get_classes('camvid').palette, np.uint8)
    expected = palette[quadrant_labels(*SIZE)]
    assert np.abs(interior(_decode_jpeg(color_jpeg), 6).astype(int) - interior(expected, 6)).mean() < 8
    blended = (rgb.astype(int) + expected) / 2
    assert np.abs(interior(_decode_jpeg(overlay_jpeg), 6) - interior(blended, 6)).mean() < 8
    _set(probe, jpeg_quality=5)
    (small,) = probe.exchange(image_pub, _frame(rgb), [color])
    assert len(small.data) < len(color_jpeg.data)
    after = _status(diagnostics, lambda v: int(v['published_color_compressed']) >= 2 + int(
        before['published_color_compressed']))
    assert after['published_color'] == before['published_color']  # the raw ones were not built
    assert int(after['published_overlay_compressed']) > int(before['published_overlay_compressed'])


def test_warns_when_confidence_leaves_the_out_of_domain_band(
        probe: Probe, image_pub: object, diagnostics: Inbox[DiagnosticArray], listen) -> None:
    labels = listen(Image, 'labels')
    _set(probe, ood_window=3, ood_min_confidence=0.6, ood_max_low_share=0.5, ood_threshold=0.5)
    for _ in range(3):  # saturated colours: the tiny model is sure of them
        probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])
    known = _status(diagnostics)
    assert known['level'] == '0' and float(known['mean_confidence']) > 0.8, known
    assert float(known['low_confidence_share']) < 0.1 and known['confidence_frames'] == '3'  # block borders
    gray = np.full((*SIZE, 3), 128, np.uint8)  # between every class: ~1/3 confidence everywhere
    for _ in range(3):
        probe.exchange(image_pub, _frame(gray), [labels])
    unknown = _status(diagnostics)
    assert unknown['level'] == '1'
    assert float(unknown['mean_confidence']) < 0.4 and float(unknown['low_confidence_share']) == 1.0
    assert 'mean confidence 0.32 below 0.60 (out of domain?)' in unknown['message']
    assert 'low-confidence share 1.00 above 0.50 (out of domain?)' in unknown['message']
