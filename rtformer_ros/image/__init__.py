"""ROS-free pictures: message <-> array codec (``codec``), palette, overlay, thumbnails and sheets (``render``).

Used by the node, the bag tools, the demo and the tests alike; needs numpy, OpenCV and rosbags-image, never rclpy
(``codec`` imports sensor_msgs only inside the two functions that build rclpy messages).
"""
