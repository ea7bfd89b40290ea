"""``rtformer quantize``: an exported graph -> static INT8 (QDQ), calibrated on camera frames.

Calibration frames come from an image folder or a rosbag2 image topic and go through the engine's own resize and
colour path (`SegmentationEngine.preprocess`), so the graph sees them exactly as it will at run time. Weights are
quantized per output channel (int8, symmetric), activations per tensor (uint8). The QDQ file runs everywhere:
ONNX Runtime's CPU EP fuses it into int8 kernels (VNNI), OpenVINO and TensorRT read it as INT8.

What stays in float (measured on CamVid val with the shipped model, see docs/deployment.md):
- the in-graph input normalisation, and everything after the classifier conv (logit resize, argmax, confidence):
  no weights there, and quantizing the logit resize too cost 0.1 point of mIoU;
- ops without int8 kernels worth a QDQ pair: the attention's Softmax, the normalisations (GFA divides by small
  sums), BatchNorm after a Concat, Concat itself (OpenVINO 2026.4 crashes compiling a QDQ Concat);
- ``--keep-float`` op types on request (none by default: MatMul or the first/last conv in float changed nothing).

The confidence: the export computes it as ``1 / sum(exp(l - max l))`` (fastest on ORT's CPU EP, which transposes a
Softmax over the class axis); OpenVINO, where INT8 runs fastest, fuses ``ReduceMax(Softmax(l))`` instead and runs
the INT8 frame in 0.81x the time with it. So the INT8 file gets the Softmax form unless ``confidence_op='direct'``
(same value: max |difference| ~1e-7 in fp32).

Imports neither torch nor ROS; needs ``onnx`` (quantization runs on a workstation, like export).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx

from rtformer_ros.engine import EngineError, SegmentationEngine
from rtformer_ros.errors import RtformerError
from rtformer_ros.util import progress as progress_bar

__all__ = ['CONFIDENCE_OPS', 'DEFAULT_KEEP_FLOAT', 'IMAGE_SUFFIXES', 'METHODS', 'QuantizeError', 'calibration_frames',
           'quantize_model']

METHODS = ('minmax', 'percentile', 'entropy')
HISTOGRAM_MAX_FRAMES = 16
"""percentile/entropy: ORT's histogram calibrator holds every calibrated tensor of every frame in memory before
it builds the histograms (~180 MB a frame for Slim with the network at 480x640; it grows with the pixels);
minmax reduces as it goes."""
CONFIDENCE_OPS = ('softmax', 'direct')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')

# Ops whose QDQ is worth its cost (int8 kernels, or int8 passing through); the rest stay float. Not Concat:
# OpenVINO 2026.4 crashes compiling a QDQ Concat.
_QUANTIZED_OPS = ('Conv', 'MatMul', 'Add', 'Relu', 'Resize', 'AveragePool', 'MaxPool')
DEFAULT_KEEP_FLOAT: tuple[str, ...] = ()


class QuantizeError(RtformerError, ValueError):
    """The model or the calibration source cannot be used; the message names the file and the problem."""


def _spread(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``count`` items (all of them when there are fewer)."""
    if wanted >= count:
        return list(range(count))
    return sorted({round(i * (count - 1) / max(1, wanted - 1)) for i in range(wanted)})


def _folder_frames(folder: Path, frames: int) -> Iterator[tuple[np.ndarray, str]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        msg = f'{folder}: no images ({", ".join(IMAGE_SUFFIXES)}) to calibrate on'
        raise QuantizeError(msg)
    for index in _spread(len(files), frames):
        image = cv2.imread(str(files[index]), cv2.IMREAD_COLOR)
        if image is None:
            msg = f'{files[index]}: not a readable image'
            raise QuantizeError(msg)
        yield image, 'bgr'


def _bag_frames(bag: Path, topic: str | None, frames: int) -> Iterator[tuple[np.ndarray, str]]:
    from rtformer_ros.bags import BagError
    from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE, BagReader
    from rtformer_ros.image.codec import CodecError, decode_camera

    try:
        with BagReader(bag) as reader:
            if topic is None:
                images = sorted(t for t, kind in reader.topics.items() if kind in (IMAGE, COMPRESSED_IMAGE))
                if len(images) != 1:
                    msg = f'{bag}: give --topic, the bag has {len(images)} image topics ({", ".join(images)})'
                    raise QuantizeError(msg)
                topic = images[0]
            reader.require(topic, (IMAGE, COMPRESSED_IMAGE))
            wanted = set(_spread(reader.message_count(topic), frames))
            for index, (_, _, raw) in enumerate(reader.messages([topic])):
                if index in wanted:
                    try:
                        decoded = decode_camera(reader.deserialize(raw, topic))
                    except CodecError as err:
                        msg = f'{bag}: {topic} message {index}: {err}'
                        raise QuantizeError(msg) from None
                    yield decoded.image, decoded.color_order
    except BagError as err:
        raise QuantizeError(str(err)) from None


def calibration_frames(source: str | Path, prepare: Callable[[np.ndarray, str], np.ndarray], frames: int,
                       topic: str | None = None) -> Iterator[np.ndarray]:
    """Up to ``frames`` model-size RGB frames from ``source``, spread evenly over it.

    Args:
        source: a folder of images, or a rosbag2 (folder with ``metadata.yaml``, ``.db3`` or ``.mcap``).
        prepare: (image, colour order) -> the graph's input frame; the engine's ``preprocess``.
        frames: how many frames to take.
        topic: the bag's image topic (default: its only Image/CompressedImage topic).

    Raises:
        QuantizeError: the source is missing, holds no images, or a frame does not decode.
    """
    source = Path(source)
    if not source.exists():
        msg = f'{source}: no such calibration source (an image folder or a rosbag2)'
        raise QuantizeError(msg)
    is_bag = source.suffix in ('.db3', '.mcap') or (source / 'metadata.yaml').is_file()
    images = _bag_frames(source, topic, frames) if is_bag else _folder_frames(source, frames)
    for image, order in images:
        yield prepare(image, order)


def _float_nodes(graph: onnx.GraphProto, keep_float: Sequence[str]) -> list[str]:
    """Nodes to leave in float: before the first Conv, after the last Conv, and ops of ``keep_float`` types."""
    nodes = list(graph.node)
    convs = [i for i, node in enumerate(nodes) if node.op_type == 'Conv']
    if not convs:
        msg = 'no Conv in the graph: not an RTFormer export'
        raise QuantizeError(msg)
    keep = {node.name for node in nodes[:convs[0]]} | {node.name for node in nodes[convs[-1] + 1:]}
    keep |= {node.name for node in nodes if node.op_type in keep_float}
    return sorted(keep)


def _softmax_confidence(graph: onnx.GraphProto) -> None:
    """Rewrite ``confidence = 1 / ReduceSum(Exp(l - ReduceMax(l)))`` as ``ReduceMax(Softmax(l))`` in place."""
    producer = {out: node for node in graph.node for out in node.output}
    chain, name = [], 'confidence'
    for op, arg in (('Reciprocal', 0), ('ReduceSum', 0), ('Exp', 0), ('Sub', 1), ('ReduceMax', None)):
        node = producer.get(name)
        if node is None or node.op_type != op:
            return  # no confidence output, or not the exported form: leave the graph alone
        chain.append(node)
        name = node.input[arg] if arg is not None else ''
    reciprocal, _, _, sub, top = chain
    first = min(list(graph.node).index(node) for node in chain)
    for node in chain:
        graph.node.remove(node)
    softmax = onnx.helper.make_node('Softmax', [sub.input[0]], ['confidence_softmax'], axis=1,
                                    name='confidence_softmax')
    top_prob = onnx.helper.make_node('ReduceMax', ['confidence_softmax', *top.input[1:]], [reciprocal.output[0]],
                                     name='confidence_max')
    top_prob.attribute.extend(a for a in top.attribute if a.name != 'keepdims')  # axes, in opsets before 18
    top_prob.attribute.append(onnx.helper.make_attribute('keepdims', 0))
    graph.node.insert(first, top_prob)
    graph.node.insert(first, softmax)


class _Reader:
    """ORT's CalibrationDataReader protocol over our frames, with a progress bar.

    The first frame is read at once, so a bad source fails before the slow graph preparation starts.
    """

    def __init__(self, frames: Iterator[np.ndarray], total: int, progress: bool | None) -> None:
        self._frames = frames
        self._next = next(frames, None)
        self._bar = progress_bar(total=total, enabled=progress, desc='calibrate', unit='frame')
        self.count = 0

    @property
    def empty(self) -> bool:
        return self.count == 0 and self._next is None

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame, self._next = self._next, next(self._frames, None) if self._next is not None else None
        if frame is None:
            self._bar.close()
            return None
        self.count += 1
        self._bar.update()
        return {'image': frame[None]}

    def rewind(self) -> None:  # one pass is all the calibrators need
        pass


def quantize_model(model: str | Path, out: str | Path, source: str | Path, *, frames: int = 64,
                   method: str = 'minmax', topic: str | None = None, resize: str = 'stretch',
                   keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT, confidence_op: str = 'softmax',
                   progress: bool | None = None) -> Path:
    """Quantize the exported fp32 graph ``model`` to a QDQ INT8 graph ``out``.

    Args:
        model: an fp32 ``.onnx`` written by ``rtformer export``.
        out: destination ``.onnx``; its metadata says ``precision=int8`` and names the calibration.
        source: calibration frames (image folder or rosbag2); never the frames the model is scored on.
        frames: how many calibration frames (spread evenly over the source).
        method: 'minmax', 'percentile' (99.999th) or 'entropy' activation ranges.
        topic: the bag's image topic.
        resize: the engine's resize policy for frames of another size.
        keep_float: op types left in float besides the input normalisation and the output tail.
        confidence_op: 'softmax' (ReduceMax of a Softmax, fastest on OpenVINO) or 'direct' (as exported,
            fastest on ORT's CPU EP).
        progress: a progress bar: None on a terminal only, True/False always/never.

    Raises:
        QuantizeError: bad arguments, a model that is not an fp32 export, or an unusable calibration source.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        msg = f'--method: expected one of {", ".join(METHODS)}, got {method!r}'
        raise QuantizeError(msg)
    if frames < 1:
        msg = f'--frames: expected >= 1, got {frames}'
        raise QuantizeError(msg)
    if method != 'minmax' and frames > HISTOGRAM_MAX_FRAMES:
        msg = (f'--frames {frames} with --method {method}: at most {HISTOGRAM_MAX_FRAMES} (its calibrator keeps every '
               "frame's activations in memory, ~180 MB each for the shipped model); use minmax for more frames")
        raise QuantizeError(msg)
    if confidence_op not in CONFIDENCE_OPS:
        msg = f'--confidence-op: expected one of {", ".join(CONFIDENCE_OPS)}, got {confidence_op!r}'
        raise QuantizeError(msg)
    model, out = Path(model), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = SegmentationEngine(model, providers='cpu', warmup=0, resize=resize)
    except EngineError as err:
        raise QuantizeError(str(err)) from None
    meta = engine.metadata
    if meta.precision != 'fp32':
        engine.close()
        msg = f'{model}: is {meta.precision}; quantize the fp32 export'
        raise QuantizeError(msg)
    frames_iter = calibration_frames(source, lambda image, order: engine.preprocess(image, order), frames, topic)
    reader = _Reader(frames_iter, frames, progress)
    if reader.empty:
        engine.close()
        msg = f'{source}: no calibration frames read'
        raise QuantizeError(msg)
    calibrate = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
                 'entropy': CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory(prefix='rtformer_quantize_') as tmp:
        # Shape inference and ORT's graph folding (BatchNorm into Conv) first, as ORT's quantizer expects.
        prepared = Path(tmp) / 'prepared.onnx'
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(prepared)
        for index, node in enumerate(graph.graph.node):  # the quantizer excludes nodes by name
            node.name = node.name or f'{node.op_type}_{index}'
        if confidence_op == 'softmax':
            _softmax_confidence(graph.graph)
        onnx.save(graph, prepared)
        keep = _float_nodes(graph.graph, keep_float)
        quantize_static(
            str(prepared), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=[op for op in _QUANTIZED_OPS if op not in keep_float], nodes_to_exclude=keep,
            calibrate_method=calibrate,
            extra_options={'CalibTensorRangeSymmetric': False, 'CalibPercentile': 99.999},
        )
    engine.close()
    quantized = onnx.load(out)
    label = f'{Path(source).name}{f":{topic}" if topic else ""}, {reader.count} frames, {method}'
    props = replace(meta, precision='int8', calibration=label).to_props()
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, props)
    quantized.graph.doc_string = ''
    onnx.save(quantized, out)
    return out
