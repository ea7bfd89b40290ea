"""rtformer_node in its own process, fed and read by a probe node: headers, sizes, encodings, class ids,
camera_info pairing, latched class_info, lazy outputs, runtime parameters, malformed frames.

One node for the module (tiny model). Its input QoS is reliable here so that every test frame, including the
malformed ones that must be counted, is delivered; best-effort input is exercised in test_node_multicam.py
and test_launch.py.
"""

from __future__ import annotations

import array
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import Probe, frame_message, interior, quadrant_labels, quadrants
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

from rtformer_ros.classes import IGNORE_INDEX, get_classes
from rtformer_ros.image.codec import SUPPORTED_ENCODINGS
from rtformer_ros.ros.client import Inbox, NodeProcess, diagnostic_values
from rtformer_ros.ros.qos import LATCHED_QOS

REPO = Path(__file__).resolve().parents[1]
NODE = '/rtformer_node'
STATUS = '/rtformer_node: image'
CAMVID = get_classes('camvid')
SIZE = (48, 64)  # not the model's 64x80: outputs must come back at the input size


@pytest.fixture(scope='module')
def node(tiny_model: Path) -> Iterator[NodeProcess]:
    # The probe's stamps are a second apart per frame: camera_info ages are tested in test_node_health.py.
    params = {'model': tiny_model, 'input_qos': 'reliable', 'camera_info_max_age': 3600.0}
    with NodeProcess(params=params) as process:
        yield process


@pytest.fixture(scope='module')
def image_pub(probe: Probe, node: NodeProcess) -> object:
    publisher = probe.publisher(Image, 'image', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    probe.wait_for_subscribers(publisher)
    return publisher


@pytest.fixture(scope='module')
def labels(probe: Probe) -> Inbox[Image]:
    return probe.subscribe(Image, 'segmentation/labels')


@pytest.fixture(scope='module')
def diagnostics(probe: Probe) -> Inbox[DiagnosticArray]:
    return probe.subscribe(DiagnosticArray, '/diagnostics')


def _frame(rgb: np.ndarray, encoding: str = 'rgb8', frame_id: str = 'camera_optical_frame', pad: int = 0):
    def make(stamp: object) -> Image:
        msg = frame_message(rgb, encoding, pad=pad)
        msg.header = Header(stamp=stamp, frame_id=frame_id)
        return msg
    return make


def _pixels(msg: Image, dtype: type = np.uint8, channels: int = 1) -> np.ndarray:
    shape = (msg.height, msg.width, channels) if channels > 1 else (msg.height, msg.width)
    row = msg.width * channels * np.dtype(dtype).itemsize
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :row]
    return np.ascontiguousarray(rows).view(dtype).reshape(shape)


def _fresh_counters(diagnostics: Inbox[DiagnosticArray], probe: Probe, timeout: float = 10.0) -> dict[str, str]:
    """Node status from a diagnostics message published after this call."""
    now = probe.node.get_clock().now().to_msg()
    after = (now.sec, now.nanosec)
    msg = diagnostics.wait_for(lambda m: (m.header.stamp.sec, m.header.stamp.nanosec) > after
                               and diagnostic_values(m, STATUS) is not None, timeout)
    values = diagnostic_values(msg, STATUS)
    assert values is not None
    return values


def _counters_reaching(diagnostics: Inbox[DiagnosticArray], key: str, value: int, timeout: float = 10.0):
    msg = diagnostics.wait_for(lambda m: int((diagnostic_values(m, STATUS) or {}).get(key, -1)) >= value, timeout)
    return diagnostic_values(msg, STATUS)


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_node_labels_follow_the_tiny_models_colours_for_every_encoding(
        encoding: str, probe: Probe, image_pub: object, labels: Inbox[Image]) -> None:
    rgb = quadrants(*SIZE)
    (out,) = probe.exchange(image_pub, _frame(rgb, encoding, pad=4), [labels])
    got = _pixels(out)
    assert got.shape == SIZE
    assert got.max() < CAMVID.num_classes
    if encoding.startswith('mono'):
        return  # gray frames carry no colour: the tiny model's ids only need to be in range
    margin = 4  # stretch to 64x80 and back moves block borders by a pixel or two
    assert np.array_equal(interior(got, margin), interior(quadrant_labels(*SIZE), margin)), encoding


def test_node_copies_header_and_input_size_to_every_output(
        probe: Probe, image_pub: object, labels: Inbox[Image]) -> None:
    size = (61, 93)  # odd, and wider than the model
    rgb = quadrants(*size)
    outputs = {name: probe.subscribe(Image, f'segmentation/{name}') for name in ('color', 'overlay', 'confidence')}
    try:
        got = probe.exchange(image_pub, _frame(rgb, 'rgb8', frame_id='front_optical', pad=3),
                             [labels, *outputs.values()])
    finally:
        for inbox in outputs.values():
            probe.unsubscribe(inbox)
    stamp = got[0].header.stamp
    for msg, encoding, channels in zip(got, ['mono8', 'rgb8', 'rgb8', '32FC1'], [1, 3, 3, 1], strict=True):
        assert msg.header.stamp == stamp and msg.header.frame_id == 'front_optical'
        assert (msg.height, msg.width, msg.encoding) == (*size, encoding)
        assert msg.step >= msg.width * channels
    ids = _pixels(got[0])
    color = _pixels(got[1], channels=3)
    palette = np.array(CAMVID.palette, np.uint8)
    assert np.array_equal(color, palette[ids])
    overlay = _pixels(got[2], channels=3).astype(int)
    assert np.abs(overlay - (rgb.astype(int) + color) / 2).max() <= 1  # default overlay_alpha 0.5
    confidence = _pixels(got[3], np.float32)
    assert np.all((confidence >= 0) & (confidence <= 1)) and confidence.mean() > 0.5


def test_node_pairs_camera_info_with_the_image_stamp_else_the_latest(
        probe: Probe, image_pub: object, labels: Inbox[Image]) -> None:
    info_pub = probe.publisher(CameraInfo, 'camera_info', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    paired = probe.subscribe(CameraInfo, 'segmentation/camera_info')
    probe.wait_for_subscribers(info_pub)
    rgb = quadrants(*SIZE)

    def publish_info(stamp: object, k0: float) -> None:
        info = CameraInfo(header=Header(stamp=stamp, frame_id='info_frame'), width=SIZE[1], height=SIZE[0])
        info.k[0] = k0
        info_pub.publish(info)

    try:
        # An info with the very stamp of the image wins over a newer one. Infos and images travel on different
        # topics, so an image can overtake its info: then try again with new stamps.
        deadline = time.monotonic() + 20
        while True:
            stamp = probe.next_stamp()
            publish_info(stamp, 100.0)
            publish_info(probe.next_stamp(), 200.0)
            image_pub.publish(_frame(rgb, frame_id='cam_a')(stamp))
            exact = paired.wait_for(lambda m, s=stamp: m.header.stamp == s)
            if exact.k[0] == 100.0 or time.monotonic() > deadline:
                break
        assert exact.k[0] == 100.0 and exact.header.frame_id == 'cam_a'
        # No info with the image's stamp: the latest one, re-stamped with the image header.
        latest, _ = probe.exchange(image_pub, _frame(rgb, frame_id='cam_b'), [paired, labels])
        assert latest.k[0] == 200.0 and latest.header.frame_id == 'cam_b'
        assert (latest.width, latest.height) == (SIZE[1], SIZE[0])
    finally:
        probe.unsubscribe(paired)
        probe.node.destroy_publisher(info_pub)


def test_node_latches_class_info_for_late_subscribers(probe: Probe, image_pub: object) -> None:
    # image_pub being matched means the node has been up for a while before this subscription exists.
    inbox = probe.subscribe(String, 'segmentation/class_info', LATCHED_QOS)
    try:
        info = json.loads(inbox.wait_for(timeout=10).data)
    finally:
        probe.unsubscribe(inbox)
    assert set(info) == {'dataset', 'variant', 'classes', 'ignore_index'}
    assert (info['dataset'], info['variant'], info['ignore_index']) == ('camvid', 'tiny', IGNORE_INDEX)
    assert [c['name'] for c in info['classes']] == list(CAMVID.names)
    assert [c['id'] for c in info['classes']] == list(range(CAMVID.num_classes))
    assert [tuple(c['color']) for c in info['classes']] == list(CAMVID.palette)


def test_node_computes_colour_overlay_and_confidence_only_while_subscribed(
        probe: Probe, image_pub: object, labels: Inbox[Image], diagnostics: Inbox[DiagnosticArray]) -> None:
    lazy = ('color', 'overlay', 'confidence')
    probe.wait_until(lambda: all(probe.node.count_subscribers(f'/segmentation/{name}') == 0 for name in lazy),
                     10, 'no subscribers on the lazy outputs')
    rgb = quadrants(*SIZE)
    probe.exchange(image_pub, _frame(rgb), [labels])
    before = _fresh_counters(diagnostics, probe)
    for _ in range(5):
        probe.exchange(image_pub, _frame(rgb), [labels])
    after = _counters_reaching(diagnostics, 'served', int(before['served']) + 5)
    for name in lazy:
        assert after[f'published_{name}'] == before[f'published_{name}'], name
    # The same counters do move once someone listens.
    color = probe.subscribe(Image, 'segmentation/color')
    try:
        probe.exchange(image_pub, _frame(rgb), [color])
    finally:
        probe.unsubscribe(color)
    later = _counters_reaching(diagnostics, 'published_color', int(after['published_color']) + 1)
    assert later['published_overlay'] == before['published_overlay']


def test_node_applies_overlay_alpha_at_runtime_and_rejects_invalid_values(
        probe: Probe, image_pub: object) -> None:
    rgb = quadrants(*SIZE)
    overlay = probe.subscribe(Image, 'segmentation/overlay')
    try:
        for alpha in (0.0, 1.0):
            (result,) = probe.set_parameters(NODE, {'overlay_alpha': alpha})
            assert result.successful, result.reason
            (out,) = probe.exchange(image_pub, _frame(rgb), [overlay])
            got = _pixels(out, channels=3)
            if alpha == 0.0:
                assert np.array_equal(got, rgb)
            else:
                palette = np.array(CAMVID.palette, np.uint8)
                assert set(map(tuple, got.reshape(-1, 3))) <= set(map(tuple, palette))
        rejected = probe.set_parameters(NODE, {'overlay_alpha': 1.5, 'resize': 'zoom', 'model': 'other.onnx'})
        assert [r.successful for r in rejected] == [False, False, False]
        assert 'overlay_alpha' in rejected[0].reason
        assert 'stretch' in rejected[1].reason and 'letterbox' in rejected[1].reason
        assert rejected[2].reason  # read-only: needs a restart
        (out,) = probe.exchange(image_pub, _frame(rgb), [overlay])  # alpha is still 1.0
        assert not np.array_equal(_pixels(out, channels=3), rgb)
    finally:
        probe.unsubscribe(overlay)
        probe.set_parameters(NODE, {'overlay_alpha': 0.5})


def _malformed(**changes: object) -> Image:
    msg = frame_message(quadrants(*SIZE), 'rgb8')
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(('msg', 'reason'), [
    (_malformed(data=array.array('B', bytes(1000))), 'data has 1000 bytes, step 192 x 48 rows needs 9216'),
    (_malformed(step=100), 'step 100 is smaller than width 64 x 3 bytes per pixel'),
    (_malformed(height=0, width=0), 'zero size 0x0'),
    (_malformed(encoding='rgb42'), "unknown encoding 'rgb42'"),
    (_malformed(encoding='32FC1'), "encoding '32FC1' has no colour conversion"),
    (_malformed(), '64x48 = 3072 pixels is more than max_pixels=3000'),
], ids=['short-data', 'small-step', 'zero-size', 'unknown-encoding', 'no-colour', 'too-many-pixels'])
def test_node_drops_malformed_frames_and_keeps_serving(
        msg: Image, reason: str, node: NodeProcess, probe: Probe, image_pub: object, labels: Inbox[Image],
        diagnostics: Inbox[DiagnosticArray]) -> None:
    if 'max_pixels' in reason:
        assert probe.set_parameters(NODE, {'max_pixels': 3000})[0].successful
    try:
        before = int(_fresh_counters(diagnostics, probe)['dropped_malformed'])
        msg.header = Header(stamp=probe.next_stamp(), frame_id='bad')
        image_pub.publish(msg)
        # Wait for the count before sending more: with depth 1 a newer frame may replace the bad one in the
        # subscription's DDS history before the callback sees it.
        after = _counters_reaching(diagnostics, 'dropped_malformed', before + 1)
        assert after['level'] == '1'  # WARN in the period of the drop
        if 'max_pixels' in reason:
            probe.set_parameters(NODE, {'max_pixels': 4096 * 4096})
        (good,) = probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])
        assert good.header.frame_id == 'camera_optical_frame'
        assert int(_fresh_counters(diagnostics, probe)['dropped_malformed']) == before + 1
        probe.wait_until(lambda: f'/image: dropped frame: {reason}' in node.output, 5, f'log line {reason!r}')
        assert node.alive()
    finally:
        probe.set_parameters(NODE, {'max_pixels': 4096 * 4096})


def test_node_declares_the_documented_parameters_with_their_types(probe: Probe, image_pub: object) -> None:
    names = set(probe.list_parameters(NODE))
    ours = {name for name in names if not name.startswith('qos_overrides.')} - {
        'use_sim_time', 'start_type_description_service'}
    # docs/node.md's table is what users set, written apart from the table the node declares from.
    documented = dict(re.findall(r'^\| `(\w+)` \| (string\[\]|string|int|double|bool) \|',
                                 (REPO / 'docs' / 'node.md').read_text(), re.M))
    assert ours == set(documented)
    # String arrays are declared by type, unset meaning empty: get_parameters has no value for them.
    types = {'string': str, 'int': int, 'double': float, 'bool': bool}
    scalars = sorted(name for name in ours if documented[name] in types)
    values = probe.get_parameters(NODE, scalars)
    assert {name: type(value) for name, value in values.items()} == {n: types[documented[n]] for n in scalars}
    assert 'qos_overrides./image.subscription.reliability' in names  # QoS overridable on the input


def test_node_reports_provider_model_and_timings_in_diagnostics(
        probe: Probe, image_pub: object, labels: Inbox[Image], diagnostics: Inbox[DiagnosticArray],
        tiny_model: Path) -> None:
    probe.exchange(image_pub, _frame(quadrants(*SIZE)), [labels])
    values = _fresh_counters(diagnostics, probe)
    assert values['provider'] == 'CPUExecutionProvider'
    assert values['model'] == str(tiny_model)
    assert values['input_topic'] == '/image'
    assert int(values['served']) >= 1 and int(values['received']) >= int(values['served'])
    for key in ('fps', 'latency_ms_p50', 'latency_ms_p95', 'infer_ms_p50', 'decode_ms_p50', 'dropped_stale',
                'dropped_malformed'):
        assert key in values, key
    assert 0 < float(values['latency_ms_p50']) <= float(values['latency_ms_p95'])
