"""The node as a process: one clear line and exit 1 on a bad model or parameter, quiet exit on Ctrl-C, no
torch anywhere in rtformer_ros.ros, and a real exported RTFormer served end to end (once one is exported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import Probe
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.image.codec import image_message
from rtformer_ros.ros.client import NodeProcess
from rtformer_ros.ros.node import resolve_model
from rtformer_ros.ros.params import DEFAULT_MODEL
from rtformer_ros.ros.qos import LATCHED_QOS

REPO = Path(__file__).resolve().parents[1]
REAL_MODEL = REPO / 'models' / DEFAULT_MODEL

# Runs the node with torch made unimportable: any `import torch` on the way raises ImportError.
WITHOUT_TORCH = ("import sys; sys.modules['torch'] = None; "
                 "from rtformer_ros.ros.node import main; sys.exit(main())")



def _corrupt_model(tmp_path: Path) -> str:
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'this is not an onnx protobuf')
    return str(path)


@pytest.mark.parametrize(('params', 'message'), [
    (lambda tmp, tiny: {'model': str(tmp / 'missing.onnx')}, 'missing.onnx: no such file'),
    (lambda tmp, tiny: {'model': 'no_such_model.onnx'}, 'model no_such_model.onnx: no such file (looked for'),
    (lambda tmp, tiny: {'model': _corrupt_model(tmp)}, 'corrupt.onnx: cannot load the ONNX model'),
    (lambda tmp, tiny: {'model': "''"}, 'variant:=base needs model:='),
    (lambda tmp, tiny: {'model': tiny, 'overlay_alpha': 2.0}, 'parameter overlay_alpha: '),
    (lambda tmp, tiny: {'model': tiny, 'providers': 'gpu'}, "parameter providers: providers='gpu' is not one of"),
    (lambda tmp, tiny: {'model': tiny, 'cameras': ['front', '/abs']}, "cameras: '/abs' is not a relative ROS name"),
], ids=['missing-path', 'missing-name', 'corrupt', 'empty', 'alpha-range', 'provider', 'camera-name'])
def test_node_exits_with_one_line_on_bad_model_or_parameter(params, message: str, tmp_path: Path,
                                                            tiny_model: Path) -> None:
    with NodeProcess(params=params(tmp_path, tiny_model)) as node:
        assert node.wait(60) == 1
    lines = [line for line in node.output.splitlines() if line.strip()]
    assert len(lines) == 1, node.output
    assert lines[0].startswith('rtformer_node: ') and message in lines[0], lines[0]


def test_node_console_script_exits_nonzero_on_a_missing_model(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name('rtformer_node')
    assert script.exists(), f'{script} not installed (pip install -e .; setup_env.sh does it in every venv)'
    with NodeProcess(params={'model': str(tmp_path / 'missing.onnx')}, executable=[str(script)]) as node:
        assert node.wait(60) == 1
    assert 'Traceback' not in node.output and 'missing.onnx: no such file' in node.output


def test_node_runs_without_torch_and_exits_quietly_on_ctrl_c(tiny_model: Path, probe: Probe) -> None:
    with NodeProcess(params={'model': tiny_model}, executable=[sys.executable, '-c', WITHOUT_TORCH]) as node:
        pub = probe.publisher(Image, 'image', qos_profile_sensor_data)
        labels = probe.subscribe(Image, 'segmentation/labels')
        try:
            probe.wait_for_subscribers(pub)
            frame = np.zeros((40, 50, 3), np.uint8)
            frame[:] = (0, 0, 255)  # blue -> class 2
            (out,) = probe.exchange(pub, lambda stamp: image_message(Header(stamp=stamp), frame, 'rgb8'), [labels])
            assert set(np.frombuffer(out.data, np.uint8).tolist()) == {2}
        finally:
            probe.unsubscribe(labels)
            probe.node.destroy_publisher(pub)
        assert node.stop() == 0
    assert 'Traceback' not in node.output, node.output


def test_node_modules_import_without_torch() -> None:
    # torch is installed here: importing every module of rtformer_ros.ros must not load it, even guardedly.
    code = ('import sys, pkgutil, importlib, rtformer_ros.ros as ros\n'
            'for info in pkgutil.iter_modules(ros.__path__): importlib.import_module(f"rtformer_ros.ros.{info.name}")\n'
            "print(sorted(name for name in sys.modules if name.partition('.')[0] == 'torch'))\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'


def test_node_serves_a_real_rtformer_export(probe: Probe, camvid_dir: Path) -> None:
    assert REAL_MODEL.is_file(), f'{REAL_MODEL}: the default model is not shipped'
    image_path = sorted((camvid_dir / 'val').glob('*.png'))[0]
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    with NodeProcess(params={'model': DEFAULT_MODEL}) as node:  # found by name in the source tree's models/
        pub = probe.publisher(Image, 'image', qos_profile_sensor_data)
        labels = probe.subscribe(Image, 'segmentation/labels')
        info = probe.subscribe(String, 'segmentation/class_info', LATCHED_QOS)
        try:
            probe.wait_for_subscribers(pub, timeout=60)
            (out,) = probe.exchange(pub, lambda stamp: image_message(Header(stamp=stamp, frame_id='cam'), bgr, 'bgr8'),
                                    [labels], timeout=60)
            classes = json.loads(info.wait_for(timeout=10).data)['classes']
        finally:
            probe.unsubscribe(labels)
            probe.unsubscribe(info)
            probe.node.destroy_publisher(pub)
        assert node.alive(), node.output
    ids = np.frombuffer(out.data, np.uint8).reshape(out.height, out.step)[:, :out.width]
    assert (out.height, out.width, out.header.frame_id) == (*bgr.shape[:2], 'cam')
    assert ids.max() < len(classes)
    # The node serves exactly what the engine computes for that frame, and the shipped model gets it mostly right.
    with SegmentationEngine(resolve_model(DEFAULT_MODEL), warmup=0) as engine:  # the node's provider: 'auto'
        assert np.array_equal(ids, engine.infer(bgr, 'bgr').labels)
    truth = cv2.imread(str(camvid_dir / 'valannot' / image_path.name), cv2.IMREAD_UNCHANGED)
    scored = truth != 11  # CamVid void
    assert (ids[scored] == truth[scored]).mean() >= 0.8
