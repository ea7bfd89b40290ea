"""``rtformer_lifecycle_node`` driven from another process through the standard ``<node>/change_state`` and
``<node>/get_state`` services: configure loads the model, activate subscribes and publishes, deactivate stops all
work, cleanup releases the session, and a failed configure leaves the node unconfigured."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import Probe
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rtformer_ros.image.codec import image_message
from rtformer_ros.ros.client import NodeProcess

NODE = '/rtformer_node'
LIFECYCLE = [sys.executable, '-m', 'rtformer_ros.ros.lifecycle']
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)



def _state(probe: Probe) -> str:
    return probe.call(GetState, f'{NODE}/get_state', GetState.Request(), timeout=30).current_state.label


def _change(probe: Probe, transition: int) -> bool:
    request = ChangeState.Request(transition=Transition(id=transition))
    return probe.call(ChangeState, f'{NODE}/change_state', request, timeout=60).success


def _frame(stamp: object) -> Image:
    return image_message(Header(stamp=stamp, frame_id='cam'), np.full((24, 32, 3), (0, 0, 255), np.uint8), 'rgb8')


def _entities(probe: Probe) -> tuple[int, int]:
    """(subscriptions on /image, publishers on /segmentation/labels) in the graph."""
    return probe.node.count_subscribers('/image'), probe.node.count_publishers('/segmentation/labels')


def test_lifecycle_node_follows_configure_activate_deactivate_cleanup(tiny_model: Path, probe: Probe) -> None:
    with NodeProcess(params={'model': tiny_model, 'input_qos': 'reliable'}, executable=LIFECYCLE) as node:
        pub = probe.publisher(Image, '/image', RELIABLE)
        labels = probe.subscribe(Image, '/segmentation/labels')
        try:
            assert _state(probe) == 'unconfigured'
            assert _entities(probe) == (0, 0)
            assert _change(probe, Transition.TRANSITION_CONFIGURE)
            assert _state(probe) == 'inactive'
            assert f'{tiny_model}: tiny camvid (fp32) on CPUExecutionProvider' in node.output  # the model is loaded
            assert _entities(probe) == (0, 0)  # but nothing is subscribed or published yet

            assert _change(probe, Transition.TRANSITION_ACTIVATE)
            assert _state(probe) == 'active'
            (out,) = probe.exchange(pub, _frame, [labels], timeout=30)
            assert set(np.frombuffer(out.data, np.uint8).tolist()) == {2}  # blue

            assert _change(probe, Transition.TRANSITION_DEACTIVATE)
            assert _state(probe) == 'inactive'
            probe.wait_until(lambda: _entities(probe) == (0, 0), 10, 'subscription and publishers gone')
            labels.clear()
            pub.publish(_frame(probe.next_stamp()))
            time.sleep(1.0)
            assert not labels.messages

            assert _change(probe, Transition.TRANSITION_CLEANUP)
            assert _state(probe) == 'unconfigured'
            assert f'{tiny_model}: ONNX Runtime session released' in node.output

            # The whole way again: nothing left over from the first round gets in the way.
            assert _change(probe, Transition.TRANSITION_CONFIGURE)
            assert _change(probe, Transition.TRANSITION_ACTIVATE)
            (out,) = probe.exchange(pub, _frame, [labels], timeout=30)
            assert (out.height, out.width) == (24, 32)

            assert _change(probe, Transition.TRANSITION_ACTIVE_SHUTDOWN)
            assert _state(probe) == 'finalized'
            probe.wait_until(lambda: _entities(probe) == (0, 0), 10, 'subscription and publishers gone')
            assert node.alive()
        finally:
            probe.unsubscribe(labels)
            probe.node.destroy_publisher(pub)
        assert node.stop() == 0
    assert 'Traceback' not in node.output


def test_lifecycle_node_stays_unconfigured_when_the_model_cannot_load(tmp_path: Path, probe: Probe) -> None:
    missing = tmp_path / 'missing.onnx'
    with NodeProcess(params={'model': missing}, executable=LIFECYCLE) as node:
        assert _state(probe) == 'unconfigured'
        assert not _change(probe, Transition.TRANSITION_CONFIGURE)
        assert _state(probe) == 'unconfigured'
        probe.wait_until(lambda: f'configure failed: model {missing}: no such file' in node.output, 10, 'the reason')
        assert not _change(probe, Transition.TRANSITION_ACTIVATE)  # no such transition from unconfigured
        assert _state(probe) == 'unconfigured'
        assert node.alive()
        assert node.stop() == 0


def test_lifecycle_console_script_starts_the_managed_node(probe: Probe) -> None:
    # The launch file runs this console script (managed:=true); setup_env.sh installs it in every venv.
    script = Path(sys.executable).with_name('rtformer_lifecycle_node')
    assert script.exists(), f'{script} not installed (pip install -e .)'
    with NodeProcess(executable=[str(script)]) as node:  # default model: nothing is loaded before configure
        assert _state(probe) == 'unconfigured'
        assert node.stop() == 0
