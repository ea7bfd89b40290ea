"""`rtformer quantize`: static INT8 QDQ graphs calibrated from image folders and bags, run on ORT and OpenVINO."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from helpers import stripes
from onnx import numpy_helper

from rtformer_ros.bags.writer import BagWriter, image_message
from rtformer_ros.cli import main
from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.quantize import QuantizeError, calibration_frames, quantize_model

HAS_OPENVINO = importlib.util.find_spec('openvino') is not None
SHIPPED = Path(__file__).resolve().parents[1] / 'models' / 'rtformer_slim_camvid_360x480.onnx'
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (20, 20, 20), (255, 255, 255), (128, 0, 128)]


def frames_of_colours(hw: tuple[int, int] = (64, 80)) -> list[np.ndarray]:
    """RGB frames: left half one colour, right half another, so calibration sees every class."""
    return [stripes(hw, left, COLOURS[(i + 1) % len(COLOURS)]) for i, left in enumerate(COLOURS)]


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp('calib')
    for i, frame in enumerate(frames_of_colours((90, 120))):  # not the model size: the engine resizes them
        cv2.imwrite(str(folder / f'{i:03d}.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / 'notes.txt').write_text('not an image, skipped')
    return folder


@pytest.fixture(scope='module')
def quantized(tiny_model: Path, image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('int8') / 'tiny_int8.onnx'
    assert main(['quantize', str(tiny_model), '-o', str(out), '--calib', str(image_folder), '--frames', '4',
                 '--no-progress']) == 0
    return out


def test_quantized_graph_has_per_channel_int8_weights_and_int8_metadata(tiny_model: Path, quantized: Path,
                                                                        image_folder: Path):
    model = onnx.load(quantized)
    ops = [node.op_type for node in model.graph.node]
    assert 'QuantizeLinear' in ops and 'DequantizeLinear' in ops
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    conv = next(node for node in model.graph.node if node.op_type == 'Conv')
    weight_dq = next(node for node in model.graph.node if node.output[0] == conv.input[1])
    assert weights[weight_dq.input[0]].dtype == np.int8
    assert weights[weight_dq.input[1]].shape == (11,)  # one scale per output channel
    # The tail after the classifier (argmax, confidence) runs in float: none of its outputs is quantized.
    quantized_tensors = {node.input[0] for node in model.graph.node if node.op_type == 'QuantizeLinear'}
    tail = [node for node in model.graph.node if node.op_type in ('ArgMax', 'Softmax', 'ReduceMax')]
    assert len(tail) == 3 and not any(out in quantized_tensors for node in tail for out in node.output)
    props = {p.key: p.value for p in model.metadata_props}
    assert props['rtformer.precision'] == 'int8'
    assert props['rtformer.calibration'] == f'{image_folder.name}, 4 frames, minmax'
    fp32 = {p.key: p.value for p in onnx.load(tiny_model).metadata_props}
    assert {k: v for k, v in props.items() if k not in ('rtformer.precision', 'rtformer.calibration')} == \
        {k: v for k, v in fp32.items() if k != 'rtformer.precision'}


@pytest.mark.parametrize('providers', ['cpu', pytest.param('openvino', marks=pytest.mark.skipif(
    not HAS_OPENVINO, reason='openvino not installed'))])
def test_quantized_model_segments_like_the_fp32_model(tiny_model: Path, quantized: Path, providers: str):
    with SegmentationEngine(quantized, providers=providers, warmup=0) as int8, \
            SegmentationEngine(tiny_model, providers='cpu', warmup=0) as fp32:
        assert int8.metadata.precision == 'int8' and int8.metadata.calibration
        for frame in frames_of_colours():
            got, want = int8.infer(frame), fp32.infer(frame)
            np.testing.assert_array_equal(got.labels, want.labels)
            assert got.confidence is not None and np.abs(got.confidence - want.confidence).max() < 0.05


def test_auto_runs_int8_files_on_openvino_where_installed(quantized: Path):
    with SegmentationEngine(quantized, warmup=0) as engine:
        assert engine.provider == ('OpenVINO' if HAS_OPENVINO else 'CPUExecutionProvider')


def test_info_shows_precision_and_calibration(quantized: Path, capsys: pytest.CaptureFixture[str]):
    assert main(['info', str(quantized), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['precision'] == 'int8' and info['calibration'].endswith('4 frames, minmax')


def test_calibration_frames_come_from_a_bag_topic_through_the_engine_resize(tiny_model: Path, tmp_path: Path):
    bag = tmp_path / 'bag'
    with BagWriter(bag, 'mcap') as writer:
        writer.add_topic('/cam/image_raw', 'sensor_msgs/msg/Image')
        for i, frame in enumerate(frames_of_colours((30, 40))):
            writer.write('/cam/image_raw', i + 1, image_message(i + 1, 'cam', frame[..., ::-1].copy(), 'bgr8'))
    with SegmentationEngine(tiny_model, providers='cpu', warmup=0) as engine:
        frames = list(calibration_frames(bag, engine.preprocess, 3))
    assert len(frames) == 3 and all(f.shape == (64, 80, 3) for f in frames)
    # Spread over the bag (first, middle, last), decoded from bgr8 back to the RGB the graph wants.
    assert tuple(frames[0][5, 5]) == COLOURS[0] and tuple(frames[-1][5, 5]) == COLOURS[-1]
    out = tmp_path / 'from_bag.onnx'
    assert main(['quantize', str(tiny_model), '-o', str(out), '--calib', str(bag), '--frames', '3',
                 '--method', 'percentile', '--no-progress']) == 0
    with SegmentationEngine(out, providers='cpu', warmup=0) as engine:
        assert engine.metadata.calibration == 'bag, 3 frames, percentile'
        assert (engine.infer(frames_of_colours()[2]).labels[:, :30] == 2).all()  # blue


def test_bad_quantize_requests_fail_with_one_line(tiny_model: Path, image_folder: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]):
    out = tmp_path / 'x.onnx'
    empty = tmp_path / 'empty'
    empty.mkdir()
    fp16 = tmp_path / 'fp16.onnx'
    model = onnx.load(tiny_model)
    for prop in model.metadata_props:
        if prop.key == 'rtformer.precision':
            prop.value = 'fp16'
    onnx.save(model, fp16)
    cases = [
        (['--calib', str(tmp_path / 'nowhere')], 'nowhere: no such calibration source'),
        (['--calib', str(empty)], 'empty: no images'),
        (['--calib', str(image_folder), '--method', 'kl'], '--method: expected one of minmax, percentile, entropy'),
        (['--calib', str(image_folder), '--frames', '0'], '--frames: expected >= 1'),
        (['--calib', str(image_folder), '--method', 'entropy'], '--frames 64 with --method entropy: at most 16'),
    ]
    for extra, problem in cases:
        assert main(['quantize', str(tiny_model), '-o', str(out), '--no-progress', *extra]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and problem in err, err
    assert main(['quantize', str(fp16), '-o', str(out), '--calib', str(image_folder), '--no-progress']) == 1
    assert 'fp16.onnx: is fp16; quantize the fp32 export' in capsys.readouterr().err
    assert not out.exists()


def test_bag_with_two_image_topics_needs_a_topic(tiny_model: Path, tmp_path: Path):
    bag = tmp_path / 'two'
    with BagWriter(bag, 'mcap') as writer:
        for topic in ('/a/image', '/b/image'):
            writer.add_topic(topic, 'sensor_msgs/msg/Image')
            writer.write(topic, 1, image_message(1, 'f', np.zeros((8, 8, 3), np.uint8), 'rgb8'))
    with pytest.raises(QuantizeError, match=r'give --topic, the bag has 2 image topics \(/a/image, /b/image\)'):
        quantize_model(tiny_model, tmp_path / 'x.onnx', bag, progress=False)
    with pytest.raises(QuantizeError, match='no topic /c/image'):
        quantize_model(tiny_model, tmp_path / 'x.onnx', bag, topic='/c/image', progress=False)


def direct_confidence(model: onnx.ModelProto) -> None:
    """The tiny model's Softmax confidence rewritten in the exported form: 1 / sum(exp(l - max l))."""
    graph = model.graph
    model.opset_import[0].version = 18  # ReduceMax takes its axes as an input, as in the export
    for node in [n for n in graph.node if n.op_type in ('Softmax', 'ReduceMax')]:
        graph.node.remove(node)
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), 'class_axis'))
    graph.node.extend([
        onnx.helper.make_node('ReduceMax', ['logits', 'class_axis'], ['top'], keepdims=1),
        onnx.helper.make_node('Sub', ['logits', 'top'], ['shifted']),
        onnx.helper.make_node('Exp', ['shifted'], ['e']),
        onnx.helper.make_node('ReduceSum', ['e', 'class_axis'], ['total'], keepdims=0),
        onnx.helper.make_node('Reciprocal', ['total'], ['confidence']),
    ])


def test_confidence_op_softmax_and_direct_give_the_same_confidence(tiny_model: Path, image_folder: Path,
                                                                   tmp_path: Path):
    model = onnx.load(tiny_model)
    direct_confidence(model)
    source = tmp_path / 'direct.onnx'
    onnx.save(model, source)
    outs = {}
    for op in ('softmax', 'direct'):
        outs[op] = quantize_model(source, tmp_path / f'{op}.onnx', image_folder, frames=4, confidence_op=op,
                                  progress=False)
    ops = {op: [n.op_type for n in onnx.load(path).graph.node] for op, path in outs.items()}
    assert 'Softmax' in ops['softmax'] and 'Exp' not in ops['softmax']
    assert 'Softmax' not in ops['direct'] and 'Reciprocal' in ops['direct']
    image = np.random.default_rng(5).integers(0, 256, (64, 80, 3), np.uint8)
    with SegmentationEngine(outs['softmax'], providers='cpu', warmup=0) as a, \
            SegmentationEngine(outs['direct'], providers='cpu', warmup=0) as b:
        sa, sb = a.infer(image), b.infer(image)
    np.testing.assert_array_equal(sa.labels, sb.labels)
    np.testing.assert_allclose(sa.confidence, sb.confidence, atol=1e-6)
    with pytest.raises(QuantizeError, match="--confidence-op: expected one of softmax, direct, got 'exp'"):
        quantize_model(source, tmp_path / 'x.onnx', image_folder, confidence_op='exp', progress=False)


def test_shipped_model_quantized_on_camvid_train_agrees_with_fp32_on_val(camvid_dir: Path, tmp_path: Path):
    out = quantize_model(SHIPPED, tmp_path / 'int8.onnx', camvid_dir / 'train', frames=8, progress=False)
    files = sorted((camvid_dir / 'val').glob('*.png'))[::50]
    with SegmentationEngine(out, providers='cpu', warmup=0) as int8, \
            SegmentationEngine(SHIPPED, providers='cpu', warmup=0) as fp32:
        agreement = np.mean([(int8.infer(f, 'bgr').labels == fp32.infer(f, 'bgr').labels).mean()
                             for f in (cv2.imread(str(p)) for p in files)])
    assert agreement >= 0.97
