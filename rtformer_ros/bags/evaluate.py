"""Score a segmentation model (or predictions recorded in the bag) against ground-truth labels in a bag.

Frames are the header stamps found on every topic involved (image, labels, and predictions with
``pred_topic``); the rest is counted as unpaired. A message that does not deserialise or decode is counted as
skipped, and the run goes on: only a bag where nothing could be scored is an error. Label or prediction ids
beyond the classes (other than the ignore id) stop the run: the labels belong to another dataset, and any
score would be meaningless.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtformer_ros.bags import BagError
from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE, BagReader, Frame
from rtformer_ros.bags.writer import BagWriter, image_message, segmentation_topics
from rtformer_ros.classes import IGNORE_INDEX, get_classes
from rtformer_ros.engine import EngineError, SegmentationEngine
from rtformer_ros.image.codec import CodecError, Decoded, decode_camera, decode_labels
from rtformer_ros.image.render import blend, colorize, palette_lut, thumbnail
from rtformer_ros.metrics import ConfusionMatrix
from rtformer_ros.util import format_stamp, progress

__all__ = ['EvalOptions', 'EvalResult', 'SampleView', 'check_options', 'evaluate', 'load_engine']

_log = logging.getLogger(__name__)

LOW_CONFIDENCE = 0.5  # confidence under which a pixel counts as low: the node's default ood_threshold
OVERLAY_ALPHA = 0.5  # as the node's default overlay_alpha


@dataclass(frozen=True)
class EvalOptions:
    """What to score: the options of ``rtformer eval`` (see its ``--help``)."""

    bag: Path  # rosbag2 folder or file
    label_topic: str  # ground truth, mono8 class ids
    image_topic: str | None = None  # Image or CompressedImage; optional only with pred_topic
    model: Path | None = None  # exported .onnx; needed unless pred_topic is given
    pred_topic: str | None = None  # predictions already in the bag (mono8), scored instead of running the model
    dataset: str | None = None  # class names when there is no model (e.g. 'camvid')
    ignore_index: int | None = None  # label id not scored; None: the model's (255)
    write_bag: Path | None = None  # new bag: the images and the segmentation topics
    storage: str = 'sqlite3'  # of write_bag
    providers: str = 'auto'  # ONNX Runtime providers of the engine
    resize: str = 'stretch'  # engine resize policy: stretch or letterbox
    samples: int = 6  # frames kept for the overlay grid
    progress: bool | None = None  # a progress bar (None: only on a terminal)
    threads: int = 0  # ONNX Runtime intra-op threads (0: its default); fleet workers share the cores out


@dataclass(frozen=True, eq=False)
class SampleView:
    """One scored frame, shrunk to a thumbnail (``image.render.thumbnail``) for the report."""

    stamp_ns: int
    rgb: np.ndarray | None  # (h, w, 3) uint8, None without an image topic
    labels: np.ndarray  # (h, w) uint8 ground truth
    pred: np.ndarray  # (h, w) uint8


@dataclass(eq=False)
class EvalResult:
    """Scores and counts of one ``evaluate`` run."""

    options: EvalOptions
    confusion: ConfusionMatrix
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    paired: int = 0  # frames with a message on every topic
    frames: int = 0  # frames scored
    unpaired: dict[str, int] = field(default_factory=dict)  # topic -> messages without partners
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> frames
    latencies_ms: list[float] = field(default_factory=list)  # engine time per frame
    # Per frame the model scored (models with confidence): mean confidence, share of pixels under LOW_CONFIDENCE;
    # the in-domain figures to set the node's out-of-domain band from.
    confidence: list[tuple[float, float]] = field(default_factory=list)
    wall_s: float = 0.0  # both passes over the bag: reading, decoding, inference, scoring, writing
    samples: list[SampleView] = field(default_factory=list)
    model: dict[str, Any] | None = None
    written: dict[str, int] | None = None  # write_bag: topic -> messages
    bags: list[dict[str, Any]] | None = None  # a fleet run (rtformer_ros.bags.fleet): one summary per bag


def check_options(opts: EvalOptions) -> None:
    """Options that cannot work, before a bag is read.

    Raises:
        BagError: the problem, naming the options.
    """
    if opts.pred_topic is None and opts.model is None:
        msg = 'give --model to run, or --pred-topic to score predictions already in the bag'
        raise BagError(msg)
    if opts.pred_topic is None and opts.image_topic is None:
        msg = 'give --image-topic (the model needs images)'
        raise BagError(msg)
    if opts.samples < 0:
        msg = f'--samples {opts.samples}: give 0 or more'
        raise BagError(msg)
    topics = [t for t in (opts.image_topic, opts.label_topic, opts.pred_topic) if t]
    if len(set(topics)) != len(topics):
        msg = f'image, label and prediction topics must differ, got {", ".join(topics)}'
        raise BagError(msg)
    if opts.write_bag is not None and opts.write_bag.exists():  # before the model loads and the bag is read
        msg = f'{opts.write_bag}: exists already, not overwriting'
        raise BagError(msg)


def load_engine(opts: EvalOptions, names_only: bool = False) -> SegmentationEngine | None:
    """The engine of ``opts.model`` (None without one); ``names_only``: just to read its metadata.

    Raises:
        BagError: the model cannot be loaded.
    """
    if opts.model is None:
        return None
    try:
        # With pred_topic the model only names the classes: no warm-up, CPU is enough.
        if opts.pred_topic is not None or names_only:
            return SegmentationEngine(opts.model, providers='cpu', warmup=0)
        return SegmentationEngine(opts.model, providers=opts.providers, resize=opts.resize,
                                  intra_op_threads=opts.threads)
    except (EngineError, ValueError) as err:
        raise BagError(str(err)) from None


def _class_set(opts: EvalOptions,
               engine: SegmentationEngine | None) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]] | None:
    """Names and palette from the model, else ``dataset``; None: infer the count from the ids seen."""
    if engine is not None:
        meta = engine.metadata
        if opts.dataset is not None and opts.dataset != meta.dataset:
            _log.warning('%s: a %s model; --dataset %s ignored', opts.model, meta.dataset, opts.dataset)
        return tuple(meta.class_names), tuple(meta.palette)
    if opts.dataset is not None:
        try:
            classes = get_classes(opts.dataset)
        except ValueError as err:
            raise BagError(f'--dataset: {err}') from None
        return classes.names, classes.palette
    return None


class _OutputBag:
    """The ``write_bag``: the input image topic copied, plus labels/color/overlay beside it."""

    def __init__(self, path: Path, storage: str, reader: BagReader, image_topic: str | None, label_topic: str,
                 palette: tuple[tuple[int, int, int], ...]) -> None:
        self.bag = BagWriter(path, storage)
        self.image_topic = image_topic
        self.topics = segmentation_topics(image_topic or label_topic)
        if image_topic is None:
            del self.topics['overlay']  # nothing to blend with
        self.lut = palette_lut(palette)
        self.bag.open()
        if image_topic is not None:
            like = reader.connections(image_topic)[0]
            self.bag.add_topic(image_topic, like.msgtype, like=like)
        for topic in self.topics.values():
            self.bag.add_topic(topic, IMAGE)

    def write(self, frame: Frame, frame_id: str, rgb: np.ndarray | None, pred: np.ndarray) -> None:
        timestamp = frame.timestamps_ns[self.image_topic] if self.image_topic else min(frame.timestamps_ns.values())
        if self.image_topic is not None:
            self.bag.write_raw(self.image_topic, timestamp, frame.raw[self.image_topic])
        color = colorize(pred, self.lut)
        outputs = {'labels': (pred, 'mono8'), 'color': (color, 'rgb8')}
        if rgb is not None:
            outputs['overlay'] = (blend(rgb, color, OVERLAY_ALPHA), 'rgb8')
        for kind, (pixels, encoding) in outputs.items():
            self.bag.write(self.topics[kind], timestamp, image_message(frame.stamp_ns, frame_id, pixels, encoding))

    def close(self) -> dict[str, int]:
        self.bag.close()
        return dict(self.bag.counts)


class _Evaluator:
    """State of one run: reader, engine, confusion matrix, counters."""

    def __init__(self, opts: EvalOptions, reader: BagReader, engine: SegmentationEngine | None) -> None:
        self.opts = opts
        self.reader = reader
        self.engine = engine
        classes = _class_set(opts, engine)
        ignore = opts.ignore_index
        if ignore is None:
            ignore = engine.metadata.ignore_index if engine is not None else IGNORE_INDEX
        self.infer_classes = classes is None
        if classes is None:
            # Unknown class count: count ids up to the ignore id (uint8 labels: at most 256), trim at the end.
            if not 0 < ignore <= 256:
                msg = f'--ignore-index {ignore}: give --dataset or --model to name the classes'
                raise BagError(msg)
            self.confusion = ConfusionMatrix(min(ignore, 256), ignore)
            names: tuple[str, ...] = ()
            palette: tuple[tuple[int, int, int], ...] = ()
        else:
            names, palette = classes
            try:
                self.confusion = ConfusionMatrix(len(names), ignore)
            except ValueError as err:
                raise BagError(f'--ignore-index: {err}') from None
        self.result = EvalResult(opts, self.confusion, names, palette)
        if engine is not None:
            meta = engine.metadata
            self.result.model = {'path': str(opts.model), 'variant': meta.variant, 'dataset': meta.dataset,
                                 'num_classes': meta.num_classes, 'input_size': list(meta.input_size),
                                 'net_size': list(meta.net_size),
                                 'provider': engine.provider, 'resize': opts.resize,
                                 'used_for': 'class names' if opts.pred_topic else 'predictions'}
        self.output: _OutputBag | None = None

    def _skip(self, reason: str, frame: Frame, err: BagError | str) -> None:
        if not self.result.skipped[reason]:  # one line per reason, the counts go to the report
            _log.warning('skipped frame at stamp %s: %s', format_stamp(frame.stamp_ns), err)
        self.result.skipped[reason] += 1

    def score(self, frame: Frame, keep_sample: bool) -> None:
        opts = self.opts
        try:
            messages = {topic: self.reader.deserialize(raw, topic) for topic, raw in frame.raw.items()}
        except BagError as err:
            self._skip('corrupt', frame, err)
            return
        decoded: Decoded | None = None
        pred = None
        topic = opts.label_topic
        try:
            labels = decode_labels(messages[topic])
            if opts.image_topic:
                topic = opts.image_topic
                decoded = decode_camera(messages[topic])
            if opts.pred_topic:
                topic = opts.pred_topic
                pred = decode_labels(messages[topic])
        except CodecError as err:
            self._skip('undecodable', frame, f'{topic}: {err}')
            return
        confidence = None
        if pred is None:
            assert self.engine is not None and decoded is not None  # check_options: no pred_topic -> model, image
            try:
                seg = self.engine.infer(*decoded, confidence=True)
            except EngineError as err:  # ONNX Runtime failed: the next frame would fail too
                raise BagError(str(err)) from None
            pred, confidence = seg.labels, seg.confidence
            self.result.latencies_ms.append(seg.latency_ms)
        if pred.shape != labels.shape:
            source = opts.pred_topic or 'the image'
            self._skip('size_mismatch', frame, f'labels {labels.shape[1]}x{labels.shape[0]} but '
                                               f'{source} {pred.shape[1]}x{pred.shape[0]}')
            return
        try:
            self.confusion.update(labels, pred)
        except ValueError as err:
            topic = opts.label_topic if str(err).startswith('label') else (opts.pred_topic or str(opts.model))
            classes = self.confusion.num_classes
            msg = (f'{topic} at stamp {format_stamp(frame.stamp_ns)}: {err}, but there are {classes} classes '
                   f'(labels of another dataset, or a wrong --ignore-index?)')
            raise BagError(msg) from None
        self.result.frames += 1
        if confidence is not None:
            low = np.count_nonzero(confidence < LOW_CONFIDENCE) / confidence.size
            self.result.confidence.append((float(confidence.mean()), float(low)))
        rgb = None
        if decoded is not None and (keep_sample or self.output is not None):
            rgb = decoded.rgb()
        if keep_sample:
            self.result.samples.append(SampleView(
                frame.stamp_ns, None if rgb is None else thumbnail(rgb, enlarge=False),
                thumbnail(labels, nearest=True, enlarge=False), thumbnail(pred, nearest=True, enlarge=False)))
        if self.output is not None:
            header = messages[opts.image_topic or opts.label_topic].header
            self.output.write(frame, header.frame_id, rgb, pred)

    def finish(self) -> EvalResult:
        result = self.result
        if self.infer_classes:
            seen = np.flatnonzero(self.confusion.matrix.sum(axis=0) + self.confusion.matrix.sum(axis=1))
            count = int(seen[-1]) + 1 if seen.size else 1
            trimmed = ConfusionMatrix(count, self.confusion.ignore_index)
            trimmed.matrix[:] = self.confusion.matrix[:count, :count]
            result.confusion = self.confusion = trimmed
            classes = get_classes('classes', count)
            result.class_names, result.palette = classes.names, classes.palette
        return result


def _run(opts: EvalOptions, reader: BagReader, engine: SegmentationEngine | None) -> EvalResult:
    """Pair, then score frame by frame (the two passes over the bag)."""
    evaluator = _Evaluator(opts, reader, engine)
    result = evaluator.result
    start = time.perf_counter()  # model loading and warm-up excluded: they are not per-frame costs
    pairing = reader.pair([t for t in (opts.image_topic, opts.label_topic, opts.pred_topic) if t])
    result.paired = pairing.frames
    result.unpaired = pairing.unpaired
    if pairing.headerless:
        result.skipped['corrupt'] += pairing.headerless
    keep = set(np.linspace(0, pairing.frames - 1, min(opts.samples, pairing.frames)).round().astype(int))
    if opts.write_bag is not None:
        evaluator.output = _OutputBag(opts.write_bag, opts.storage, reader, opts.image_topic, opts.label_topic,
                                      result.palette or get_classes('classes', 256).palette)
    try:
        frames = progress(reader.frames(pairing), enabled=opts.progress, total=pairing.frames, desc='eval',
                          unit='frame')
        for index, frame in enumerate(frames):
            evaluator.score(frame, index in keep)
    finally:
        if evaluator.output is not None:
            result.written = evaluator.output.close()
    result = evaluator.finish()
    result.wall_s = time.perf_counter() - start
    if result.frames == 0:
        unpaired = ', '.join(f'{topic} {count}' for topic, count in result.unpaired.items())
        skipped = ', '.join(f'{reason} {count}' for reason, count in result.skipped.items()) or 'none'
        msg = (f'{opts.bag}: no frame could be scored ({result.paired} paired by stamp; unpaired: {unpaired}; '
               f'skipped: {skipped})')
        raise BagError(msg)
    return result


def evaluate(opts: EvalOptions, engine: SegmentationEngine | None = None) -> EvalResult:
    """Score ``opts.model`` (or ``opts.pred_topic``) on the bag's labelled frames.

    A ``write_bag`` is removed again when the run fails: a partial bag would only block the next try.
    ``engine``: one from ``load_engine(opts)`` to reuse over many bags (left open); default: loaded and closed here.

    Raises:
        BagError: bad options, a missing bag or topic, a model that cannot be loaded, labels beyond the
            classes, or no frame that could be scored.
    """
    check_options(opts)  # write_bag does not exist past this point: whatever is there later is ours
    with BagReader(opts.bag) as reader:
        if opts.image_topic:
            reader.require(opts.image_topic, (IMAGE, COMPRESSED_IMAGE))
        reader.require(opts.label_topic, (IMAGE,))
        if opts.pred_topic:
            reader.require(opts.pred_topic, (IMAGE,))
        owned = engine is None
        if owned:
            engine = load_engine(opts)
        try:
            return _run(opts, reader, engine)
        except BaseException:
            if opts.write_bag is not None:
                shutil.rmtree(opts.write_bag, ignore_errors=True)
            raise
        finally:
            if owned and engine is not None:
                engine.close()
