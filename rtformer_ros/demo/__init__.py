"""``rtformer demo``: a real street video through the real ``rtformer_node``, recorded to files.

Starts ``rtformer_node`` as its own process (as ``ros2 run`` would) in the ``/camera`` namespace, publishes a
video (or a bag's camera topic) on ``/camera/image`` as ``sensor_msgs/Image`` bgr8 with stamps from the video's
timeline through a ``StampedClient``, collects the node's labels, colour mask and overlay by stamp, and writes
``overlay.mp4``, ``overlay.gif``, ``contact_sheet.png`` and ``summary.json`` (also printed) to ``out/demo/``.

The default video is OpenCV's ``vtest.avi`` (768x576, 795 frames, a pedestrian street), taken from Debian's
``opencv-doc`` package with ``apt-get download`` (no root needed) and cached in ``~/.cache/rtformer_ros/``.

Timing: lockstep by default (each frame waits for its outputs before the next is sent), so every frame is
segmented and the run is the same on any machine; ``--realtime`` publishes at the video's rate and the node drops
what it cannot keep up with, as on a robot.

Transport: frames of 768x576 rgb8/bgr8 exceed Fast DDS's default 512 KB shared-memory segment, and best-effort
samples that large are lost between processes with the default transports (docs/node.md, "Large frames"). The
demo therefore runs itself and the node with ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` unless that is set.

Modules: ``command`` (the subcommand), ``session`` (the node and the run), ``sources`` (video file or bag topic),
``outputs`` (video, GIF, contact sheet, summary), ``video`` (vtest.avi), ``errors``. Importing this package is
light: rclpy, OpenCV and ONNX Runtime load when the command runs.
"""

from rtformer_ros.demo.command import add_arguments, run
from rtformer_ros.demo.errors import DemoError
from rtformer_ros.demo.video import VTEST_MEMBER, VTEST_PACKAGE, extract_from_deb, fetch_vtest

__all__ = ['VTEST_MEMBER', 'VTEST_PACKAGE', 'DemoError', 'add_arguments', 'extract_from_deb', 'fetch_vtest', 'run']
