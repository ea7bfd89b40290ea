"""rtformer_ros: RTFormer real-time semantic segmentation for ROS 2, served by ONNX Runtime."""

__version__ = '0.1.0'
