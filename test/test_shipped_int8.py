"""The shipped INT8 model, the CPU default: the fp32 file quantized as the card says, scoring what it says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from helpers import camvid_val_miou, card_command, card_figure

from rtformer_ros.cli import main
from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.models import CPU_MODEL, GPU_MODEL, default_model

MODELS = Path(__file__).resolve().parents[1] / 'models'
INT8 = MODELS / CPU_MODEL


def test_default_model_is_int8_on_a_cpu_with_openvino_and_fp32_otherwise(monkeypatch: pytest.MonkeyPatch):
    gpu = {'TensorrtExecutionProvider', 'CUDAExecutionProvider'} & set(ort.get_available_providers())
    openvino = importlib.util.find_spec('openvino') is not None
    assert default_model() == (GPU_MODEL if gpu or not openvino else CPU_MODEL)
    assert (MODELS / GPU_MODEL).is_file() and INT8.is_file()
    # Without OpenVINO the INT8 file would run on ORT's CPU EP, where fp32 is faster (docs/benchmarks.md).
    monkeypatch.setitem(sys.modules, 'openvino', None)  # find_spec() answers None: not installed
    assert default_model() == GPU_MODEL


def test_int8_file_is_the_fp32_file_quantized_on_the_train_split():
    with SegmentationEngine(INT8, providers='cpu', warmup=0) as int8, \
            SegmentationEngine(MODELS / GPU_MODEL, providers='cpu', warmup=0) as fp32:
        assert int8.metadata.precision == 'int8' and fp32.metadata.precision == 'fp32'
        # Calibrated on train frames only: the val frames it is scored on were never seen.
        assert int8.metadata.calibration.startswith('train, ')
        assert (int8.metadata.class_names, int8.metadata.net_size, int8.input_size) == \
            (fp32.metadata.class_names, fp32.metadata.net_size, fp32.input_size)
    source, options = card_command(INT8.name)
    assert source == GPU_MODEL and options[options.index('--calib') + 1] == '../../shared/data/camvid/train'


def test_card_command_rebuilds_the_int8_file(camvid_dir: Path, tmp_path: Path):
    source, args = card_command(INT8.name)
    args[args.index('--calib') + 1] = str(camvid_dir / 'train')  # the card's path is relative to models/
    again = tmp_path / INT8.name
    assert main(['quantize', str(MODELS / source), '-o', str(again), *args, '--no-progress']) == 0
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
    miou = camvid_val_miou(INT8, camvid_dir, providers)
    engine = 'OpenVINO' if providers == 'openvino' else 'ONNX Runtime'
    assert abs(miou - card_figure(f'val mIoU (INT8, {engine}, 101 frames)')) <= 0.01
    assert miou >= card_figure('val mIoU (ONNX Runtime, 101 frames)') - 0.01  # at most 1 point below fp32
