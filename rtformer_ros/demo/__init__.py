"""``rtformer demo``: a real street video through the real ``rtformer_node`` into an overlay video, a GIF, a contact
sheet and a summary (docs/robot.md). ``command`` holds the subcommand (options, errors); ``sources`` the video, bag
and default-video download; ``session`` the node process and the client; ``outputs`` the files. Importing the
package is light: rclpy, OpenCV and ONNX Runtime load when the command runs.
"""
