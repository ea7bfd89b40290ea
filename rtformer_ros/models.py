"""The shipped model files, where they are found, and which one a machine runs by default.

ROS-free and light (the engine, imported only when asked), so the node's parameter default, the node's lookup
and the demo agree on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rtformer_ros.errors import RtformerError

__all__ = ['CPU_MODEL', 'GPU_MODEL', 'PROVIDER_CHOICES', 'ModelNotFoundError', 'default_model', 'model_dirs',
           'resolve_model']

PROVIDER_CHOICES = ('auto', 'tensorrt', 'cuda', 'openvino', 'openvino-fp32', 'openvino-bf16', 'cpu')
"""The ``providers`` values of the node, the demo and ``rtformer eval`` (engine.SegmentationEngine takes them)."""

GPU_MODEL = 'rtformer_slim_camvid_360x480.onnx'
"""fp32 (TensorRT builds its fp16 engine from it); also the file the INT8 one was quantized from."""

CPU_MODEL = 'rtformer_slim_camvid_360x480_int8.onnx'
"""INT8 (QDQ) of GPU_MODEL: the fastest file on a CPU with OpenVINO, within 1 point of its mIoU."""

_PACKAGE = 'rtformer_ros'


class ModelNotFoundError(RtformerError, FileNotFoundError):
    """A model name or path names no file; the text lists where it looked."""


def default_model() -> str:
    """File name (in models/) of the shipped model for this machine.

    fp32 when ONNX Runtime offers a GPU; INT8 on a CPU with OpenVINO; fp32 on ORT's CPU EP alone, where the INT8
    file (its confidence written for OpenVINO) is slower than fp32 (docs/benchmarks.md). A GPU provider listed by
    ONNX Runtime may still fail to start (no driver); the node then falls back to the CPU with the fp32 file, which
    is correct, only slower: pass ``model:=`` CPU_MODEL there.
    """
    from rtformer_ros.engine import CUDA, OPENVINO, TENSORRT, available_providers

    present = available_providers()
    return CPU_MODEL if OPENVINO in present and not {TENSORRT, CUDA} & set(present) else GPU_MODEL


def model_dirs() -> list[Path]:
    """Folders searched for a bare model file name, in order.

    The ament share folder (colcon install, sourced workspace), then ``<sys.prefix>/share`` (``pip install .``
    puts the data files there), then the checkout's models/ when the package runs from its source tree
    (editable installs and tests install no data files).
    """
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory(_PACKAGE)) / 'models')
    except (ImportError, LookupError, OSError, ValueError):  # no ament index here (plain venv, source tree)
        pass
    dirs.append(Path(sys.prefix) / 'share' / _PACKAGE / 'models')
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / 'package.xml').is_file():
        dirs.append(checkout / 'models')
    return list(dict.fromkeys(dirs))


def resolve_model(name: str) -> Path:
    """The model file for a ``model`` parameter or ``--model`` option: an existing path, else a name in model_dirs().

    Raises:
        ModelNotFoundError: empty, or not found anywhere.
    """
    if not name.strip():
        msg = 'model name is empty: pass a file (model:=<file.onnx> or --model FILE.onnx)'
        raise ModelNotFoundError(msg)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    searched = [path]
    if not path.is_absolute() and len(path.parts) == 1:
        searched = [folder / name for folder in model_dirs()]
        for candidate in searched:
            if candidate.is_file():
                return candidate
    msg = f'model {name}: no such file (looked for {", ".join(str(p) for p in searched)})'
    raise ModelNotFoundError(msg)
