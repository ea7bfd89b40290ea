"""The shipped INT8 model, the CPU default: the fp32 file quantized as the card says, scoring what it says."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from rtformer_ros.classes import IGNORE_INDEX
from rtformer_ros.cli import main
from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.metrics import ConfusionMatrix
from rtformer_ros.models import CPU_MODEL, GPU_MODEL, default_model

MODELS = Path(__file__).resolve().parents[1] / 'models'
INT8 = MODELS / CPU_MODEL


def _card() -> str:
    return (MODELS / 'README.md').read_text()


def test_default_model_is_int8_on_a_cpu_and_fp32_with_a_gpu():
    gpu = {'TensorrtExecutionProvider', 'CUDAExecutionProvider'} & set(ort.get_available_providers())
    assert default_model() == (GPU_MODEL if gpu else CPU_MODEL)
    assert (MODELS / GPU_MODEL).is_file() and INT8.is_file()


def test_int8_file_is_the_fp32_file_quantized_on_the_train_split():
    with SegmentationEngine(INT8, providers='cpu', warmup=0) as int8, \
            SegmentationEngine(MODELS / GPU_MODEL, providers='cpu', warmup=0) as fp32:
        assert int8.metadata.precision == 'int8' and fp32.metadata.precision == 'fp32'
        # Calibrated on train frames only: the val frames it is scored on were never seen.
        assert int8.metadata.calibration.startswith('train, ')
        assert (int8.metadata.class_names, int8.metadata.net_size, int8.input_size) == \
            (fp32.metadata.class_names, fp32.metadata.net_size, fp32.input_size)
    command = re.search(r'`rtformer quantize rtformer_slim_camvid_360x480\.onnx -o rtformer_slim_camvid_360x480_int8'
                        r'\.onnx ([^`]*)`', _card())
    assert command, 'models/README.md does not say how the INT8 file was made'
    assert '--calib ../../shared/data/camvid/train' in command.group(1)


def test_card_command_rebuilds_the_int8_file(camvid_dir: Path, tmp_path: Path):
    command = re.search(r'`rtformer quantize (\S+) -o (\S+) ([^`]*)`', _card())
    assert command and command.group(2) == INT8.name
    args = command.group(3).split()
    args[args.index('--calib') + 1] = str(camvid_dir / 'train')  # the card's path is relative to models/
    again = tmp_path / INT8.name
    assert main(['quantize', str(MODELS / command.group(1)), '-o', str(again), *args, '--no-progress']) == 0
    # Same graph and tensors; activation ranges come from float kernels whose last bits may differ between CPUs
    # (AVX2, AVX-512, AMX), so scales are compared to 1e-4 and quantized values to one step, not byte for byte.
    import onnx
    from onnx import numpy_helper

    built, shipped = onnx.load(again).graph, onnx.load(INT8).graph
    assert [(n.op_type, list(n.input), list(n.output)) for n in built.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in shipped.node]
    tensors = {t.name: numpy_helper.to_array(t) for t in shipped.initializer}
    assert sorted(tensors) == sorted(t.name for t in built.initializer)
    for tensor in built.initializer:
        value, expected = numpy_helper.to_array(tensor), tensors[tensor.name]
        assert value.dtype == expected.dtype and value.shape == expected.shape, tensor.name
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-9, err_msg=tensor.name)
        else:
            assert np.abs(value.astype(np.int64) - expected.astype(np.int64)).max(initial=0) <= 1, tensor.name


@pytest.mark.parametrize('providers', ['cpu', 'openvino'])
def test_int8_scores_the_model_card_val_miou(camvid_dir: Path, providers: str):
    if providers == 'openvino':
        pytest.importorskip('openvino')
    found = re.search(rf'val mIoU \(INT8, {"OpenVINO" if providers == "openvino" else "ONNX Runtime"}, 101 frames\): '
                      r'\*\*([0-9.]+)\*\*', _card())
    assert found, 'models/README.md states no INT8 val mIoU for ' + providers
    matrix = ConfusionMatrix(11, ignore_index=IGNORE_INDEX)
    with SegmentationEngine(INT8, providers=providers, warmup=0) as engine:
        for image_path in sorted((camvid_dir / 'val').glob('*.png')):
            label = cv2.imread(str(camvid_dir / 'valannot' / image_path.name), cv2.IMREAD_UNCHANGED)
            label[label == 11] = IGNORE_INDEX  # CamVid void
            matrix.update(label, engine.infer(cv2.imread(str(image_path)), color_order='bgr').labels)
    assert abs(matrix.miou - float(found.group(1))) <= 0.01
    fp32 = re.search(r'val mIoU \(ONNX Runtime, 101 frames\): \*\*([0-9.]+)\*\*', _card())
    assert fp32 and matrix.miou >= float(fp32.group(1)) - 0.01  # at most 1 point below fp32
