"""``rtformer`` itself: instant help, one line for a known failure, 130 on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import rtformer_error

COMMANDS = ('convert', 'info', 'export', 'quantize', 'bench', 'train', 'eval', 'eval-merge', 'bag-from-dataset',
            'replay', 'demo')
HEAVY = ('torch', 'onnx', 'onnxruntime', 'rclpy', 'cv2', 'rosbags', 'matplotlib')


def test_help_of_every_command_loads_no_heavy_module() -> None:
    # In a fresh interpreter: what `rtformer [COMMAND] --help` leaves in sys.modules.
    script = (
        'import contextlib, io, json, sys\n'
        'from rtformer_ros.cli import main\n'
        'helps = {}\n'
        f'for argv in [[], *([name] for name in {COMMANDS!r})]:\n'
        '    out = io.StringIO()\n'
        '    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n'
        "        main([*argv, '--help'])\n"
        "    helps[' '.join(argv)] = out.getvalue()\n"
        f'print(json.dumps({{"helps": helps, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120, check=True)
    found = json.loads(result.stdout)
    assert found['heavy'] == []
    listed = re.findall(r'^ {4}([a-z-]+)\b', found['helps'][''], re.MULTILINE)  # rtformer --help: one row a command
    assert listed == list(COMMANDS)
    for name in COMMANDS:
        assert found['helps'][name].startswith(f'usage: rtformer {name} '), name


def test_a_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    assert rtformer_error('info', tmp_path / 'nope.pt') == f'rtformer info: {tmp_path / "nope.pt"}: no such checkpoint'


def test_classes_that_do_not_fit_the_weights_are_one_line(paddle_fixtures: Path, tmp_path: Path) -> None:
    line = rtformer_error('convert', paddle_fixtures / 'rtformer_slim_c19.pdparams', '-o', tmp_path / 'x.pt',
                          '--variant', 'slim', '--num-classes', '19', '--dataset', 'camvid')
    assert line == "rtformer convert: dataset 'camvid' has 11 classes, not 19"
    assert not (tmp_path / 'x.pt').exists()


@pytest.mark.parametrize(('argv', 'problem'), [
    (['eval', '--bag', 'b', '--label-topic', '/l', '--pred-topic', '/p', '--samples', '-1'],
     '--samples -1: give 0 or more'),
    (['bench', '--models', 'm.onnx', '--runs', '0'], '--runs and --threads must be >= 1, --warmup >= 0, got 0'),
    (['convert', 'w.pdparams', '-o', 'w.pt', '--variant', 'slim', '--num-classes', '19', '--cross-size', '0'],
     '--cross-size 0: give 1 or more'),
])
def test_option_values_that_cannot_work_are_one_line(argv: list[str], problem: str) -> None:
    line = rtformer_error(*argv)
    assert line.startswith(f'rtformer {argv[0]}: {problem}'), line


@pytest.mark.ros
def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path) -> None:
    from rtformer_ros.bags.writer import BagWriter, image_message

    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic('/cam/image', 'sensor_msgs/msg/Image')
        bag.write('/cam/image', 1, image_message(1, 'cam', np.zeros((64, 64, 3), np.uint8), 'bgr8'))
    # replay waits up to --wait for a node on the topic; nobody runs one, so it is still waiting when interrupted
    replay = subprocess.Popen([sys.executable, '-m', 'rtformer_ros.cli', 'replay', '--bag', str(tmp_path / 'bag'),
                               '--image-topic', '/cam/image', '-o', str(tmp_path / 'out'), '--wait', '60'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    replay.send_signal(signal.SIGINT)
    _, err = replay.communicate(timeout=30)
    assert replay.returncode == 130 and 'Traceback' not in err, err
