"""The shipped model files, and which one a machine runs by default: INT8 on a CPU, fp32 where a GPU is.

ROS-free and light (ONNX Runtime only), so the node's parameter default and the tools agree on it.
"""

from __future__ import annotations

__all__ = ['CPU_MODEL', 'GPU_MODEL', 'PROVIDER_CHOICES', 'default_model']

PROVIDER_CHOICES = ('auto', 'tensorrt', 'cuda', 'openvino', 'openvino-fp32', 'openvino-bf16', 'cpu')
"""The ``providers`` values of the node, the demo and ``rtformer eval`` (engine.SegmentationEngine takes them)."""

GPU_MODEL = 'rtformer_slim_camvid_360x480.onnx'
"""fp32 (TensorRT builds its fp16 engine from it); also the file the INT8 one was quantized from."""

CPU_MODEL = 'rtformer_slim_camvid_360x480_int8.onnx'
"""INT8 (QDQ) of GPU_MODEL: the fastest file on a CPU (OpenVINO, or ORT's CPU EP), within 1 point of its mIoU."""

_GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')


def default_model() -> str:
    """File name (in models/) of the shipped model for this machine: fp32 when ONNX Runtime offers a GPU, else INT8.

    A GPU provider listed by ONNX Runtime may still fail to start (no driver); the node then falls back to the CPU
    with the fp32 file, which is correct, only slower: pass ``model:=`` CPU_MODEL there.
    """
    import onnxruntime as ort

    return GPU_MODEL if any(p in ort.get_available_providers() for p in _GPU_PROVIDERS) else CPU_MODEL
