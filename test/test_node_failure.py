"""A node whose engine fails on every frame: with ``on_failure:=exit`` (the default) the process ends with
EXIT_FAILED after ``max_failures`` failures in a row, so launch's respawn can act; with ``keep`` it reports
ERROR and recovers once frames go through again.

The failing engine is real: a model that loads and warms up, then fails inside ONNX Runtime on every frame that
is not one flat colour (test/tiny_model.py, ``fail_unless_flat``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import Probe, frame_message, quadrants
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rtformer_ros.ros.client import Inbox, NodeProcess, diagnostic_values
from rtformer_ros.ros.segmenter import EXIT_FAILED

STATUS = '/rtformer_node: image'
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def failing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_model import make_tiny_model

    path = tmp_path_factory.mktemp('models') / 'fails_camvid_64x80.onnx'
    return make_tiny_model(path, size=(64, 80), confidence=True, fail_unless_flat=True)



def _frame(rgb: np.ndarray):
    def make(stamp: object) -> Image:
        msg = frame_message(rgb, 'rgb8')
        msg.header = Header(stamp=stamp, frame_id='cam')
        return msg
    return make


def test_node_exits_nonzero_after_max_failures_in_a_row(failing_model: Path, probe: Probe) -> None:
    params = {'model': failing_model, 'max_failures': 3, 'input_qos': 'reliable'}
    with NodeProcess(params=params) as node:
        pub = probe.publisher(Image, 'image', RELIABLE)
        labels = probe.subscribe(Image, 'segmentation/labels')  # someone listens: frames are not skipped
        diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics')
        try:
            probe.wait_for_subscribers(pub, timeout=30)
            make = _frame(quadrants(48, 64))
            deadline = time.monotonic() + 60
            while node.alive() and time.monotonic() < deadline:  # a frame at a time: none replaces another
                pub.publish(make(probe.next_stamp()))
                time.sleep(0.2)
            code = node.wait(30)
            assert not labels.messages  # not a single frame was served
            error = diagnostics.wait_for(
                lambda m: (diagnostic_values(m, STATUS) or {}).get('level') == '2', timeout=5)
        finally:
            probe.unsubscribe(labels)
            probe.unsubscribe(diagnostics)
            probe.node.destroy_publisher(pub)
    assert code == EXIT_FAILED, node.output
    values = diagnostic_values(error, STATUS)
    assert values['consecutive_failures'] == '3' and values['failed'] == '3'
    assert values['message'].startswith('inference keeps failing')
    assert f'3 inference failures in a row, the last: {failing_model}: inference failed' in node.output
    assert f'exiting with code {EXIT_FAILED} (on_failure:=exit)' in node.output
    assert 'Traceback' not in node.output


def test_node_keeps_serving_after_failures_with_on_failure_keep(failing_model: Path, probe: Probe) -> None:
    params = {'model': failing_model, 'max_failures': 2, 'on_failure': 'keep', 'input_qos': 'reliable'}
    with NodeProcess(params=params) as node:
        pub = probe.publisher(Image, 'image', RELIABLE)
        labels: Inbox[Image] = probe.subscribe(Image, 'segmentation/labels')
        diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics')
        try:
            probe.wait_for_subscribers(pub, timeout=30)
            textured = _frame(quadrants(48, 64))
            for _ in range(4):
                pub.publish(textured(probe.next_stamp()))
                time.sleep(0.2)
            failing = diagnostics.wait_for(
                lambda m: (diagnostic_values(m, STATUS) or {}).get('level') == '2', timeout=20)
            assert int(diagnostic_values(failing, STATUS)['consecutive_failures']) >= 2
            # A flat frame goes through the same engine: served, and the failure streak ends.
            (out,) = probe.exchange(pub, _frame(np.full((48, 64, 3), 200, np.uint8)), [labels])
            assert (out.height, out.width) == (48, 64)
            diagnostics.clear()
            recovered = diagnostics.wait_for(
                lambda m: (diagnostic_values(m, STATUS) or {}).get('consecutive_failures') == '0', timeout=10)
            assert diagnostic_values(recovered, STATUS)['level'] != '2'
            assert node.alive()
        finally:
            probe.unsubscribe(labels)
            probe.unsubscribe(diagnostics)
            probe.node.destroy_publisher(pub)
        assert node.stop() == 0
    assert 'inference failures in a row' in node.output and 'going on (on_failure:=keep)' in node.output


def test_lifecycle_node_exits_nonzero_after_max_failures_in_a_row(failing_model: Path, probe: Probe) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    params = {'model': failing_model, 'max_failures': 2, 'input_qos': 'reliable'}
    executable = [sys.executable, '-m', 'rtformer_ros.ros.lifecycle']
    with NodeProcess(params=params, executable=executable) as node:
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            request = ChangeState.Request(transition=Transition(id=transition))
            assert probe.call(ChangeState, '/rtformer_node/change_state', request, timeout=60).success
        pub = probe.publisher(Image, 'image', RELIABLE)
        labels = probe.subscribe(Image, 'segmentation/labels')
        try:
            probe.wait_for_subscribers(pub, timeout=30)
            make = _frame(quadrants(48, 64))
            deadline = time.monotonic() + 60
            while node.alive() and time.monotonic() < deadline:
                pub.publish(make(probe.next_stamp()))
                time.sleep(0.2)
            code = node.wait(30)
        finally:
            probe.unsubscribe(labels)
            probe.node.destroy_publisher(pub)
    assert code == EXIT_FAILED, node.output
    assert '2 inference failures in a row' in node.output and 'Traceback' not in node.output
