"""Peak memory of a running node fed decompression bombs on ``image/compressed``.

    python bench/bomb_memory.py            # this checkout's node
    cd /tmp && PYTHONPATH=/path/to/other/checkout python /path/to/this/bench/bomb_memory.py   # another version
                                           # (outside a checkout: `python -m` puts the working folder first)

Starts ``rtformer_node`` (tiny test model, compressed input) as its own process, serves one good JPEG, then sends
a 20000x20000 PNG (389 KB) and a JPEG whose header declares 20000x20000 (631 bytes), each followed by a good
frame, and prints the node's peak RSS (``VmHWM`` from /proc) after each. Linux only.
"""

from __future__ import annotations

import array
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test'))  # the bombs and the tiny model are test helpers
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 101)))  # keep off other runs

import cv2  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import jpeg_bomb, png_bomb, quadrants  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tiny_model import make_tiny_model  # noqa: E402

from rtformer_ros.ros.client import NodeProcess, StampedClient  # noqa: E402


def _peak_mb(node: NodeProcess) -> float:
    for line in Path(f'/proc/{node.process.pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def _message(data: bytes, fmt: str):
    return lambda stamp: CompressedImage(header=Header(stamp=stamp), format=fmt, data=array.array('B', data))


def main() -> int:
    model = make_tiny_model(Path(tempfile.mkdtemp()) / 'tiny_camvid_64x80.onnx', confidence=True)
    ok, good = cv2.imencode('.jpg', quadrants(48, 64))
    assert ok
    good_frame = _message(good.tobytes(), 'jpeg')
    params = {'model': model, 'input_transport': 'compressed', 'input_qos': 'reliable'}
    with StampedClient() as probe, NodeProcess(params=params) as node:
        pub = probe.publisher(CompressedImage, 'image/compressed', QoSProfile(depth=5,
                                                                              reliability=ReliabilityPolicy.RELIABLE))
        labels = probe.subscribe(Image, 'segmentation/labels')
        probe.wait_for_subscribers(pub, timeout=30)
        probe.exchange(pub, good_frame, [labels], timeout=30)
        print(f'| after | node VmHWM (MB) |\n|---|---|\n| a good 48x64 JPEG | {_peak_mb(node):.0f} |')
        for name, data, fmt in (('PNG 20000x20000 (389 KB)', png_bomb(20000, 20000), 'png'),
                                ('JPEG declaring 20000x20000 (631 B)', jpeg_bomb(20000, 20000), 'jpeg')):
            pub.publish(_message(data, fmt)(probe.next_stamp()))
            time.sleep(15)  # a node that decodes it takes seconds
            probe.exchange(pub, good_frame, [labels], timeout=60)  # and it still serves
            print(f'| {name}, then a good frame | {_peak_mb(node):.0f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
