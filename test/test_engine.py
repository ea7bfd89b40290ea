"""SegmentationEngine on real ONNX Runtime sessions of the tiny contract graph (red -> 0, green -> 1, blue -> 2)."""

from __future__ import annotations

import importlib.util
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import stripes
from onnx import TensorProto
from tiny_model import make_tiny_model

from rtformer_ros.classes import get_classes
from rtformer_ros.engine import (
    CUDA,
    OPENVINO,
    EngineError,
    Segmentation,
    SegmentationEngine,
    _fit,
    available_providers,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
MODEL_HW = (64, 80)
SIZES = [(64, 80), (480, 640), (32, 40), (100, 37), (37, 301), (1, 1)]
HAS_OPENVINO = importlib.util.find_spec('openvino') is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason='openvino not installed')


@pytest.fixture(scope='module', params=['plain-run', 'io-binding', 'openvino'])
def engine(request: pytest.FixtureRequest, tiny_model: Path) -> SegmentationEngine:
    """Every runner: plain session.run, the I/O-binding path the GPU uses (with CPU buffers here), OpenVINO."""
    if request.param == 'openvino':
        if not HAS_OPENVINO:
            pytest.skip('openvino not installed')
        with SegmentationEngine(tiny_model, providers='openvino') as eng:
            assert eng.provider == OPENVINO
            yield eng
        return
    with SegmentationEngine(tiny_model, providers='cpu', io_binding=request.param == 'io-binding') as eng:
        yield eng


def edited_model(src: Path, dst: Path, edit) -> Path:
    model = onnx.load(src)
    edit(model)
    onnx.save(model, dst)
    return dst


# ---- sizes, resize policies, colour order -------------------------------------------------------------------


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('hw', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_labels_come_back_at_the_input_image_size(engine: SegmentationEngine, hw: tuple[int, int],
                                                  policy: str) -> None:
    image = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    seg = engine.infer(image, resize=policy)
    assert isinstance(seg, Segmentation)
    assert seg.labels.shape == hw
    assert seg.labels.dtype == np.uint8
    assert seg.labels.flags.c_contiguous
    assert seg.labels.max() < engine.metadata.num_classes
    assert seg.confidence is not None
    assert seg.confidence.shape == hw
    assert seg.latency_ms > 0


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('hw', [(300, 900), (900, 300), (480, 640), (64, 80)])
def test_resize_policy_maps_a_left_right_split_back_to_the_right_pixels(engine: SegmentationEngine,
                                                                       hw: tuple[int, int], policy: str) -> None:
    height, width = hw
    seg = engine.infer(stripes(hw, RED, BLUE), resize=policy)
    # The boundary may blur over about one model pixel on each side: this many image pixels.
    scale_w = width / MODEL_HW[1]
    margin = int(max(scale_w, height / MODEL_HW[0]) if policy == 'letterbox' else scale_w) + 2
    assert (seg.labels[:, :width // 2 - margin] == 0).all()
    assert (seg.labels[:, width // 2 + margin:] == 2).all()
    boundary = (seg.labels == 2).argmax(axis=1)  # first blue column of every row
    assert np.abs(boundary - width // 2).max() <= margin


@pytest.mark.parametrize('hw', [(300, 900), (900, 300), (50, 51)])
def test_letterbox_padding_never_leaks_into_the_labels(engine: SegmentationEngine, hw: tuple[int, int]) -> None:
    # The mean-colour padding reads as class 0 for the tiny model; an all-blue frame must stay all 2.
    seg = engine.infer(stripes(hw, BLUE), resize='letterbox')
    assert (seg.labels == 2).all()


def test_letterbox_keeps_aspect_ratio_and_centres_the_image() -> None:
    wide = _fit((300, 900), MODEL_HW, 'letterbox')
    assert (wide.left, wide.width) == (0, 80)
    assert wide.height == round(300 * 80 / 900)
    assert wide.top == (64 - wide.height) // 2
    tall = _fit((900, 300), MODEL_HW, 'letterbox')
    assert (tall.top, tall.height) == (0, 64)
    assert tall.width == round(300 * 64 / 900)
    assert tall.left == (80 - tall.width) // 2
    assert _fit((300, 900), MODEL_HW, 'stretch') == _fit((64, 80), MODEL_HW, 'letterbox')


def test_letterbox_pads_with_the_mean_colour_around_the_resized_image(engine: SegmentationEngine) -> None:
    # What the network sees (the padding itself never reaches the labels, so check the frame it is fed).
    image = stripes((30, 90), BLUE)
    window = _fit(image.shape[:2], MODEL_HW, 'letterbox')
    frame = engine._prepare(image, window, bgr=False)
    assert frame.shape == (*MODEL_HW, 3)
    inside = np.zeros(MODEL_HW, bool)
    inside[window.slices] = True
    assert (frame[inside] == BLUE).all()
    mean = [round(m * 255) for m in engine.metadata.mean]
    assert mean == [124, 116, 104]
    assert (frame[~inside] == mean).all()


@pytest.mark.parametrize('policy', ['stretch', 'letterbox'])
@pytest.mark.parametrize('hw', [MODEL_HW, (120, 200)])
def test_red_is_class_0_whether_passed_as_rgb_or_bgr(engine: SegmentationEngine, hw: tuple[int, int],
                                                     policy: str) -> None:
    rgb = stripes(hw, RED)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert (engine.infer(rgb, 'rgb', policy).labels == 0).all()
    assert (engine.infer(bgr, 'bgr', policy).labels == 0).all()
    # The same bytes read with the other order are blue: the flag is honoured, not ignored.
    assert (engine.infer(rgb, 'bgr', policy).labels == 2).all()


def test_non_contiguous_and_read_only_frames_match_a_contiguous_copy(engine: SegmentationEngine) -> None:
    image = stripes((120, 160), RED, BLUE)
    expected = engine.infer(image).labels
    read_only = np.frombuffer(image.tobytes(), np.uint8).reshape(image.shape)  # like a ROS message buffer
    assert not read_only.flags.writeable
    np.testing.assert_array_equal(engine.infer(read_only).labels, expected)
    padded = np.zeros((120, 170, 3), np.uint8)  # rows with a step larger than width * 3
    padded[:, :160] = image
    np.testing.assert_array_equal(engine.infer(padded[:, :160]).labels, expected)
    np.testing.assert_array_equal(engine.infer(image[..., ::-1], 'bgr').labels, expected)


def test_io_binding_and_plain_run_give_identical_results(tiny_model: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    results = []
    for io_binding in (False, True):
        with SegmentationEngine(tiny_model, providers='cpu', io_binding=io_binding, warmup=0) as eng:
            results.append(eng.infer(image, resize='letterbox'))
    np.testing.assert_array_equal(results[0].labels, results[1].labels)
    np.testing.assert_array_equal(results[0].confidence, results[1].confidence)


def test_results_do_not_alias_engine_buffers(engine: SegmentationEngine) -> None:
    first = engine.infer(stripes(MODEL_HW, RED))
    engine.infer(stripes(MODEL_HW, BLUE))
    assert (first.labels == 0).all()


# ---- confidence and metadata ----------------------------------------------------------------------------------


def test_confidence_is_float32_probability_at_image_size(engine: SegmentationEngine) -> None:
    assert engine.has_confidence
    image = np.random.default_rng(2).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    conf = engine.infer(image).confidence
    assert conf is not None
    assert conf.shape == (70, 90)
    assert conf.dtype == np.float32
    num_classes = engine.metadata.num_classes
    assert conf.min() >= 1 / num_classes - 1e-6  # max softmax probability is never below uniform
    assert conf.max() <= 1.0
    assert engine.infer(image, confidence=False).confidence is None


def test_confidence_is_none_for_a_model_without_it(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / 'noconf.onnx', size=(48, 48), confidence=False)
    with SegmentationEngine(path, providers='cpu') as eng:
        assert not eng.has_confidence
        seg = eng.infer(stripes((30, 60), BLUE))
        assert seg.confidence is None
        assert (seg.labels == 2).all()


def test_float16_confidence_comes_back_as_float32(tiny_model: Path, tmp_path: Path) -> None:
    def to_float16(model: onnx.ModelProto) -> None:  # as an fp16 export writes it
        for node in model.graph.node:
            node.output[:] = ['confidence32' if name == 'confidence' else name for name in node.output]
        model.graph.node.append(onnx.helper.make_node('Cast', ['confidence32'], ['confidence'],
                                                      to=TensorProto.FLOAT16))
        model.graph.output[1].type.tensor_type.elem_type = TensorProto.FLOAT16

    path = edited_model(tiny_model, tmp_path / 'fp16conf.onnx', to_float16)
    for io_binding in (False, True):
        with SegmentationEngine(path, providers='cpu', io_binding=io_binding) as eng:
            conf = eng.infer(stripes((50, 50), RED)).confidence
            assert conf is not None
            assert conf.dtype == np.float32
            assert conf.shape == (50, 50)
            assert 0.5 < conf.min() <= conf.max() <= 1.0


def test_metadata_round_trips_from_the_onnx_file(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / 'city.onnx', size=(32, 64), dataset='cityscapes', confidence=True)
    classes = get_classes('cityscapes')
    with SegmentationEngine(path, providers='cpu') as eng:
        assert eng.metadata.class_names == classes.names
        assert eng.metadata.palette == classes.palette
        assert eng.metadata.input_size == (32, 64)
        assert eng.input_size == (32, 64)
        assert eng.metadata.variant == 'tiny'
        assert eng.metadata.confidence
        assert eng.provider == 'CPUExecutionProvider'


# ---- providers --------------------------------------------------------------------------------------------------


def test_available_providers_are_in_preference_order() -> None:
    providers = available_providers()
    assert providers[-1] == 'CPUExecutionProvider'
    order = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', OPENVINO, 'CPUExecutionProvider']
    present = [*ort.get_available_providers(), *([OPENVINO] if HAS_OPENVINO else [])]
    assert providers == [p for p in order if p in present]


def test_auto_provider_is_chosen_and_logged(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger='rtformer_ros.engine'):
        eng = SegmentationEngine(tiny_model, warmup=1)
    # fp32 files stay on ONNX Runtime under 'auto' (OpenVINO is for INT8 files: test_quantize.py).
    assert eng.provider == next(p for p in available_providers() if p != OPENVINO)
    assert any(eng.provider in r.getMessage() for r in caplog.records if r.name == 'rtformer_ros.engine')
    eng.close()


@pytest.mark.parametrize('providers', ['cpu', 'CPU', ['CPUExecutionProvider'], 'cpu, CPUExecutionProvider'])
def test_explicit_cpu_provider_by_short_or_full_name(tiny_model: Path, providers: object) -> None:
    with SegmentationEngine(tiny_model, providers=providers, warmup=0) as eng:
        assert eng.provider == 'CPUExecutionProvider'


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason='CUDA is available here')
@pytest.mark.parametrize('providers', ['cuda', 'cuda,cpu', ['CUDAExecutionProvider', 'CPUExecutionProvider']])
def test_unavailable_explicit_provider_is_an_error_not_a_fallback(tiny_model: Path, providers: object) -> None:
    with pytest.raises(EngineError, match=re.escape(tiny_model.name) + '.*CUDAExecutionProvider.*not available'):
        SegmentationEngine(tiny_model, providers=providers)


@needs_openvino
@pytest.mark.parametrize('providers', ['openvino', 'OV', 'openvino-fp32', 'openvino-bf16', ['OpenVINO', 'cpu']])
def test_openvino_by_name_matches_the_cpu_provider(tiny_model: Path, providers: object) -> None:
    image = np.random.default_rng(4).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    with SegmentationEngine(tiny_model, providers=providers, warmup=0) as ov, \
            SegmentationEngine(tiny_model, providers='cpu', warmup=0) as cpu:
        assert ov.provider.startswith(OPENVINO) and ov.precision in ('fp32', 'bf16')
        if providers == 'openvino-fp32':
            assert ov.precision == 'fp32'
        got, want = ov.infer(image, resize='letterbox'), cpu.infer(image, resize='letterbox')
    # bf16 may flip a pixel whose two best logits tie within bf16's 8 mantissa bits.
    assert (got.labels == want.labels).mean() >= 0.99
    np.testing.assert_allclose(got.confidence, want.confidence, atol=0.02 if ov.precision == 'bf16' else 1e-5)


@pytest.mark.skipif(HAS_OPENVINO, reason='openvino is installed here')
def test_openvino_when_not_installed_is_an_error(tiny_model: Path) -> None:
    with pytest.raises(EngineError, match=re.escape(tiny_model.name) + '.*OpenVINO.*not available'):
        SegmentationEngine(tiny_model, providers='openvino')


@pytest.mark.parametrize('spinning', [True, False])
def test_intra_op_spinning_is_set_on_the_session_as_asked(tiny_model: Path, spinning: bool) -> None:
    with SegmentationEngine(tiny_model, providers='cpu', warmup=0, allow_spinning=spinning) as eng:
        options = eng._session.get_session_options()
        assert options.get_session_config_entry('session.intra_op.allow_spinning') == str(int(spinning))
        assert (eng.infer(stripes((16, 20), (230, 20, 20))).labels == 0).all()  # red: class 0


@pytest.mark.parametrize('providers', ['gpu-please', []])
def test_unknown_or_empty_provider_is_an_error(tiny_model: Path, providers: object) -> None:
    with pytest.raises(EngineError, match=re.escape(tiny_model.name)):
        SegmentationEngine(tiny_model, providers=providers)


# ---- model errors -----------------------------------------------------------------------------------------------


def set_image_dtype_float(model: onnx.ModelProto) -> None:
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT  # the first Cast accepts float too


def rename_labels(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        node.output[:] = ['classes' if name == 'labels' else name for name in node.output]
    model.graph.output[0].name = 'classes'


def drop_metadata(model: onnx.ModelProto) -> None:
    del model.metadata_props[:]


def set_dynamic_width(model: onnx.ModelProto) -> None:
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = 'width'


def shrink_metadata_size(model: onnx.ModelProto) -> None:
    for prop in model.metadata_props:
        if prop.key == 'rtformer.input_size':
            prop.value = '32x32'


BROKEN_GRAPHS = [
    (set_image_dtype_float, r"input 'image' is float32, expected uint8"),
    (rename_labels, r"no output 'labels'"),
    (drop_metadata, r'metadata key rtformer\.\w+ missing'),
    (set_dynamic_width, r"input 'image' has shape .*expected static \[1, H, W, 3\]"),
    (shrink_metadata_size, r'metadata input_size \(32, 32\) differs from the graph \(64, 80\)'),
]


@pytest.mark.parametrize(('edit', 'problem'), BROKEN_GRAPHS, ids=[e.__name__ for e, _ in BROKEN_GRAPHS])
def test_broken_export_contract_is_one_line_naming_file_and_problem(tiny_model: Path, tmp_path: Path, edit,
                                                                    problem: str) -> None:
    path = edited_model(tiny_model, tmp_path / f'{edit.__name__}.onnx', edit)
    with pytest.raises(EngineError, match=re.escape(str(path)) + ': ' + problem) as info:
        SegmentationEngine(path, providers='cpu')
    assert '\n' not in str(info.value)


def test_missing_model_file_is_an_engine_error(tmp_path: Path) -> None:
    path = tmp_path / 'nowhere.onnx'
    with pytest.raises(EngineError, match=re.escape(str(path)) + ': no such model file'):
        SegmentationEngine(path)


@pytest.mark.parametrize('content', ['garbage', 'truncated'])
def test_unreadable_model_file_is_an_engine_error(tiny_model: Path, tmp_path: Path, content: str) -> None:
    data = tiny_model.read_bytes()
    path = tmp_path / f'{content}.onnx'
    path.write_bytes(b'\x00not an onnx model\xff' * 50 if content == 'garbage' else data[:len(data) // 2])
    with pytest.raises(EngineError, match=re.escape(str(path)) + ': cannot load the ONNX model') as info:
        SegmentationEngine(path, providers='cpu')
    assert '\n' not in str(info.value)


# ---- bad calls --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('image', [
    np.zeros((48, 64, 3), np.float32),
    np.zeros((48, 64), np.uint8),
    np.zeros((48, 64, 4), np.uint8),
    np.zeros((48, 64, 1), np.uint8),
    np.zeros((0, 64, 3), np.uint8),
    np.zeros((1, 48, 64, 3), np.uint8),
], ids=['float32', 'gray', 'rgba', 'one-channel', 'empty', 'batched'])
def test_bad_image_is_a_value_error_naming_what_was_expected(engine: SegmentationEngine, image: np.ndarray) -> None:
    expected = f'image: expected uint8 HxWx3, got {image.dtype} {image.shape}'
    with pytest.raises(ValueError, match=re.escape(expected)):
        engine.infer(image)


def test_non_array_image_is_a_value_error(engine: SegmentationEngine) -> None:
    with pytest.raises(ValueError, match='image: expected uint8 HxWx3 numpy array, got list'):
        engine.infer([[[0, 0, 0]]])


def test_unknown_color_order_or_resize_is_a_value_error(engine: SegmentationEngine, tiny_model: Path) -> None:
    image = stripes(MODEL_HW, RED)
    with pytest.raises(ValueError, match=r"color_order: expected 'rgb' or 'bgr', got 'hsv'"):
        engine.infer(image, color_order='hsv')
    with pytest.raises(ValueError, match=r"resize: expected 'stretch' or 'letterbox', got 'crop'"):
        engine.infer(image, resize='crop')
    with pytest.raises(ValueError, match=r"resize: expected 'stretch' or 'letterbox', got 'fit'"):
        SegmentationEngine(tiny_model, resize='fit')


def test_closed_engine_refuses_to_infer(tiny_model: Path) -> None:
    with SegmentationEngine(tiny_model, providers='cpu', warmup=0) as eng:
        eng.infer(stripes(MODEL_HW, RED))
    with pytest.raises(EngineError, match=re.escape(tiny_model.name) + ': engine is closed'):
        eng.infer(stripes(MODEL_HW, RED))


# ---- concurrency and imports ----------------------------------------------------------------------------------


def test_two_threads_sharing_one_engine_get_their_own_results(engine: SegmentationEngine) -> None:
    jobs = {
        'red': (stripes((120, 90), RED), 0),
        'blue': (stripes((64, 80), BLUE), 2),
        'green': (stripes((33, 200), (0, 255, 0)), 1),
    }
    errors: list[str] = []

    def worker(name: str) -> None:
        image, label = jobs[name]
        for _ in range(150):
            seg = engine.infer(image, resize='letterbox')
            if seg.labels.shape != image.shape[:2] or not (seg.labels == label).all():
                errors.append(f'{name}: got classes {np.unique(seg.labels)}')
                return

    threads = [threading.Thread(target=worker, args=(name,)) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_engine_imports_without_torch_or_rclpy() -> None:
    # A robot needs ONNX Runtime only: importing the engine must load none of these (they are installed here, so
    # any import of them, even a guarded one, shows in sys.modules).
    code = (
        'import sys\n'
        'import rtformer_ros.engine\n'
        "print(sorted({name.partition('.')[0] for name in sys.modules} & {'torch', 'rclpy', 'onnx'}))\n"
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'
