"""``rtformer demo``: a real street video through the real ``rtformer_node``, recorded to files.

Starts ``rtformer_node`` as its own process (as ``ros2 run`` would) in ``/camera``, publishes a video (default:
OpenCV's ``vtest.avi`` out of Debian's ``opencv-doc``, cached) or a bag's camera topic as bgr8 frames stamped on
the video's timeline, collects labels, colour mask and overlay by stamp (``ros.client.StampedClient``), and writes
``overlay.mp4``, ``overlay.gif``, ``contact_sheet.png`` and ``summary.json`` to ``out/demo/``. Lockstep by default
(every frame is segmented, on any machine); ``--realtime`` publishes at the video's rate and the node drops what it
cannot keep up with. Modules: ``command`` (options, errors), ``sources``, ``session``, ``outputs``. Importing this
package is light: rclpy, OpenCV and ONNX Runtime load when the command runs.
"""

from rtformer_ros.demo.command import DemoError, add_arguments, run

__all__ = ['DemoError', 'add_arguments', 'run']
