"""``rtformer demo``: a real street video through the real ``rtformer_node``, recorded to files.

Starts ``rtformer_node`` as its own process (as ``ros2 run`` would) in the ``/camera`` namespace, publishes a
video (or a bag's camera topic) on ``/camera/image`` as ``sensor_msgs/Image`` bgr8 with stamps from the video's
timeline, subscribes to the node's labels, colour mask, overlay, class_info and ``/diagnostics``, and writes to
``out/demo/``: ``overlay.mp4``, ``overlay.gif``, ``contact_sheet.png`` and ``summary.json`` (also printed).

The default video is OpenCV's ``vtest.avi`` (768x576, 795 frames, a pedestrian street), taken from Debian's
``opencv-doc`` package with ``apt-get download`` (no root needed) and cached in ``~/.cache/rtformer_ros/``.

Timing: lockstep by default (each frame waits for its outputs, matched by stamp, before the next is sent), so
every frame is segmented and the run is the same on any machine; ``--realtime`` publishes at the video's rate and
the node drops what it cannot keep up with, as on a robot.

Transport: frames of 768x576 rgb8/bgr8 exceed Fast DDS's default 512 KB shared-memory segment, and best-effort
samples that large are lost between processes with the default transports (docs/node.md, "Large frames"). The
demo therefore runs itself and the node with ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` unless that variable is
already set.

Modules: ``errors`` (``DemoError``), ``video`` (vtest.avi), ``sources`` (video file or bag topic), ``collector``
(outputs by stamp), ``outputs`` (video, GIF, contact sheet), ``options``, ``session`` (the node and the run),
``summary``, ``command`` (``add_arguments``, ``run``, ``main``). Importing this package is light (numpy): rclpy,
OpenCV and ONNX Runtime load when the command runs.
"""

from rtformer_ros.demo.command import add_arguments, main, run
from rtformer_ros.demo.errors import DemoError
from rtformer_ros.demo.options import DemoOptions
from rtformer_ros.demo.outputs import write_contact_sheet, write_gif
from rtformer_ros.demo.session import run_demo
from rtformer_ros.demo.sources import SourceInfo
from rtformer_ros.demo.summary import format_summary
from rtformer_ros.demo.video import VTEST_MEMBER, VTEST_PACKAGE, cache_dir, extract_from_deb, fetch_vtest

__all__ = [
    'VTEST_MEMBER',
    'VTEST_PACKAGE',
    'DemoError',
    'DemoOptions',
    'SourceInfo',
    'add_arguments',
    'cache_dir',
    'extract_from_deb',
    'fetch_vtest',
    'format_summary',
    'main',
    'run',
    'run_demo',
    'write_contact_sheet',
    'write_gif',
]
