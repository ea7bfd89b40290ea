"""ONNX Runtime / OpenVINO inference engine for exported RTFormer graphs: providers, I/O binding, resize policy.

The exported graph (see ``rtformer_ros.metadata``) takes one ``image`` uint8 (1, H, W, 3) RGB frame at a static
size and returns ``labels`` uint8 (1, H, W) [and ``confidence`` (1, H, W)]; normalisation, upsampling and argmax
happen inside the graph. This module only fits frames of any size to H x W, runs the graph on the best provider
(TensorRT -> CUDA -> OpenVINO -> CPU) and maps the result back to the frame's own size.

OpenVINO is the `openvino` runtime itself (an optional install), not ONNX Runtime's OpenVINO execution provider:
the runtime runs the file in bf16 on CPUs that have it (AVX512-BF16, AMX) and reads INT8 QDQ files, while
``onnxruntime-openvino`` replaces the ``onnxruntime`` module and its CPU device offers no bf16 (measured in
docs/benchmarks.md). The ONNX Runtime session is still made, for the contract check and the metadata.

Imports neither torch nor ROS: a robot needs only ONNX Runtime, OpenCV and numpy (and optionally OpenVINO).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from rtformer_ros.errors import RtformerError, first_line
from rtformer_ros.metadata import MetadataError, ModelMetadata
from rtformer_ros.util import cache_dir as cache_dir_of

__all__ = ['EngineError', 'Segmentation', 'SegmentationEngine', 'available_providers']

_log = logging.getLogger(__name__)

TENSORRT = 'TensorrtExecutionProvider'
CUDA = 'CUDAExecutionProvider'
CPU = 'CPUExecutionProvider'
# The openvino runtime on the CPU (not an ORT provider): its own precision choice (bf16 where the CPU has it), or
# forced to fp32 / bf16.
OPENVINO = 'OpenVINO'
OPENVINO_FP32 = 'OpenVINO-fp32'
OPENVINO_BF16 = 'OpenVINO-bf16'
_OPENVINO = (OPENVINO, OPENVINO_FP32, OPENVINO_BF16)

# Our preference order for 'auto'; other providers ORT may list (Azure, ORT's OpenVINO EP, ...) are not used.
# 'auto' takes OpenVINO before ORT's CPU EP for INT8 files only (fastest there, docs/benchmarks.md); fp32 files
# stay on ORT, exact.
_PREFERENCE = (TENSORRT, CUDA, OPENVINO, CPU)
_SHORT_NAMES = {'tensorrt': TENSORRT, 'trt': TENSORRT, 'cuda': CUDA, 'cpu': CPU, 'openvino': OPENVINO,
                'ov': OPENVINO, 'openvino-fp32': OPENVINO_FP32, 'ov-fp32': OPENVINO_FP32,
                'openvino-bf16': OPENVINO_BF16, 'ov-bf16': OPENVINO_BF16}
_GPU_PROVIDERS = frozenset({TENSORRT, CUDA})

_RESIZE_POLICIES = ('stretch', 'letterbox')
_COLOR_ORDERS = ('rgb', 'bgr')

# ONNX tensor type strings as ORT reports them -> numpy dtype names used in messages and buffers.
_ONNX_DTYPES = {
    'tensor(uint8)': 'uint8', 'tensor(int8)': 'int8', 'tensor(uint16)': 'uint16', 'tensor(int16)': 'int16',
    'tensor(int32)': 'int32', 'tensor(int64)': 'int64', 'tensor(float16)': 'float16', 'tensor(float)': 'float32',
    'tensor(double)': 'float64', 'tensor(bool)': 'bool', 'tensor(bfloat16)': 'bfloat16',
}
_CONFIDENCE_DTYPES = ('float32', 'float16')

# ORT's pybind exception types derive from Exception directly, not from RuntimeError.
_ORT_ERRORS: tuple[type[BaseException], ...] = tuple(
    getattr(_ort_state, name) for name in (
        'Fail', 'InvalidArgument', 'NoSuchFile', 'NoModel', 'EngineError', 'RuntimeException', 'InvalidProtobuf',
        'ModelLoaded', 'NotImplemented', 'InvalidGraph', 'EPFail')
    if hasattr(_ort_state, name)
) + (RuntimeError, ValueError, OSError)


class EngineError(RtformerError, RuntimeError):
    """The model or the requested provider cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == is elementwise, not a bool
class Segmentation:
    """Result of one ``SegmentationEngine.infer`` call, at the input image's own size."""

    labels: np.ndarray  # (H, W) uint8 class ids
    confidence: np.ndarray | None  # (H, W) float32 max softmax probability in [0, 1], or None
    latency_ms: float  # wall time inside infer: preprocessing + run + postprocessing


def available_providers() -> list[str]:
    """ONNX Runtime providers usable by the engine on this machine, in preference order (best first).

    A listed GPU provider may still fail to initialise (missing CUDA/TensorRT libraries); the engine
    checks what the session actually got. 'OpenVINO' is listed when the ``openvino`` package is installed.
    """
    present = _present()
    return [name for name in _PREFERENCE if name in present]


def _present() -> set[str]:
    present = set(ort.get_available_providers())
    if importlib.util.find_spec('openvino') is not None:
        present.update(_OPENVINO)
    return present


@dataclass(frozen=True)
class _Window:
    """Where the image content sits inside the model frame (the rest is letterbox padding)."""

    top: int
    left: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def _fit(image_hw: tuple[int, int], model_hw: tuple[int, int], policy: str) -> _Window:
    """Window of the model frame that the image is resized into under ``policy``."""
    model_h, model_w = model_hw
    if policy == 'stretch':
        return _Window(0, 0, model_h, model_w)
    height, width = image_hw
    scale = min(model_h / height, model_w / width)
    fit_h = min(model_h, max(1, round(height * scale)))
    fit_w = min(model_w, max(1, round(width * scale)))
    # Centred padding: the network sees context on both sides as in training crops.
    return _Window((model_h - fit_h) // 2, (model_w - fit_w) // 2, fit_h, fit_w)


def _restore(output: np.ndarray, window: _Window, image_hw: tuple[int, int], interpolation: int) -> np.ndarray:
    """Cut the window out of a model-size map and resize it to the image's size (contiguous, owned)."""
    crop = output[window.slices]
    if crop.shape == image_hw:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (image_hw[1], image_hw[0]), interpolation=interpolation)


def _check_image(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        msg = f'image: expected uint8 HxWx3 numpy array, got {type(image).__name__}'
        raise ValueError(msg)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        msg = f'image: expected uint8 HxWx3, got {image.dtype} {image.shape}'
        raise ValueError(msg)
    return image


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        msg = f'{name}: expected {" or ".join(repr(c) for c in choices)}, got {value!r}'
        raise ValueError(msg)
    return str(value)


def _provider_options(name: str, device_id: int, cache_dir: Path) -> dict[str, object]:
    if name == TENSORRT:
        # FP16 kernels from the FP32 graph; engine + timing caches turn a minutes-long first build into seconds.
        return {
            'device_id': device_id,
            'trt_fp16_enable': True,
            'trt_engine_cache_enable': True,
            'trt_engine_cache_path': str(cache_dir),
            'trt_timing_cache_enable': True,
            'trt_timing_cache_path': str(cache_dir),
        }
    if name == CUDA:
        return {'device_id': device_id}
    return {}


def _resolve_providers(providers: str | Sequence[str], source: str) -> tuple[list[str], bool]:
    """Full ORT provider names to register, and whether the caller asked for them explicitly.

    Raises:
        EngineError: an explicitly requested provider is unknown or not available here.
    """
    if isinstance(providers, str) and providers.lower() == 'auto':
        return available_providers(), False
    # A comma-separated string ('tensorrt,cuda') is a list too: ROS parameters are plain strings.
    requested = [p.strip() for p in providers.split(',')] if isinstance(providers, str) else list(providers)
    if not requested:
        msg = (f"{source}: no provider given (use 'auto', 'tensorrt', 'cuda', 'openvino', 'openvino-fp32', "
               "'openvino-bf16', 'cpu' or ORT provider names)")
        raise EngineError(msg)
    names = list(dict.fromkeys(_SHORT_NAMES.get(name.lower(), name) for name in requested))  # dedupe, keep order
    present = _present()
    for name in names:
        if name not in present:
            msg = (f'{source}: provider {name} requested but not available '
                   f'(available: {", ".join(available_providers())})')
            raise EngineError(msg)
    if names == [TENSORRT] and CUDA in present:
        # TensorRT hands the nodes it cannot build to CUDA rather than the CPU (no provider fallback: TRT stays).
        names.append(CUDA)
    return names, True


def _dtype_name(onnx_type: str) -> str:
    return _ONNX_DTYPES.get(onnx_type, onnx_type)


def _static_dims(shape: Sequence[object]) -> tuple[int, ...] | None:
    return tuple(shape) if all(isinstance(d, int) and d > 0 for d in shape) else None  # type: ignore[arg-type]


def _check_graph(session: ort.InferenceSession, source: str) -> tuple[tuple[int, int], str | None]:
    """Check the export contract; return the graph's (H, W) and the confidence dtype (None: no confidence).

    Raises:
        EngineError: an input or output is missing or has the wrong type or shape.
    """
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name: node for node in session.get_outputs()}
    image = inputs.get('image')
    if image is None or len(inputs) != 1:
        msg = f"{source}: expected a single input 'image', got {', '.join(inputs) or 'none'}"
        raise EngineError(msg)
    if _dtype_name(image.type) != 'uint8':
        msg = f"{source}: input 'image' is {_dtype_name(image.type)}, expected uint8"
        raise EngineError(msg)
    dims = _static_dims(image.shape)
    if dims is None or len(dims) != 4 or dims[0] != 1 or dims[3] != 3:
        msg = f"{source}: input 'image' has shape {list(image.shape)}, expected static [1, H, W, 3]"
        raise EngineError(msg)
    size = (dims[1], dims[2])
    labels = outputs.get('labels')
    if labels is None:
        msg = f"{source}: no output 'labels' (outputs: {', '.join(outputs)})"
        raise EngineError(msg)
    _check_map_output(labels, ('uint8',), size, source)
    confidence = outputs.get('confidence')
    if confidence is None:
        return size, None
    _check_map_output(confidence, _CONFIDENCE_DTYPES, size, source)
    return size, _dtype_name(confidence.type)


def _check_map_output(node: ort.NodeArg, dtypes: tuple[str, ...], size: tuple[int, int], source: str) -> None:
    dtype = _dtype_name(node.type)
    if dtype not in dtypes:
        msg = f"{source}: output '{node.name}' is {dtype}, expected {' or '.join(dtypes)}"
        raise EngineError(msg)
    if _static_dims(node.shape) != (1, *size):
        msg = f"{source}: output '{node.name}' has shape {list(node.shape)}, expected [1, {size[0]}, {size[1]}]"
        raise EngineError(msg)


class _SessionRunner:
    """Plain ``session.run``: ORT copies the input in and allocates fresh outputs per call (thread-safe)."""

    def __init__(self, session: ort.InferenceSession, has_confidence: bool) -> None:
        self._session = session
        self._has_confidence = has_confidence

    def run(self, frame: np.ndarray, confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        want = confidence and self._has_confidence
        outputs = self._session.run(['labels', 'confidence'] if want else ['labels'], {'image': frame[None]})
        return outputs[0][0], outputs[1][0] if want else None


class _BoundRunner:
    """I/O binding with buffers allocated once on ``device`` ('cuda' or 'cpu').

    Per frame: one copy of the frame into the input buffer, the run, and one host copy of each wanted
    output. The buffers are shared, so a lock serialises copy-in/run/copy-out; preprocessing stays outside.
    Fixed buffer addresses are also what TensorRT/CUDA graphs need.
    """

    def __init__(self, session: ort.InferenceSession, size: tuple[int, int], confidence_dtype: str | None,
                 device: str, device_id: int) -> None:
        self._session = session
        self._device = device
        self._lock = threading.Lock()

        def alloc(shape: tuple[int, ...], dtype: str) -> ort.OrtValue:
            return ort.OrtValue.ortvalue_from_shape_and_type(shape, np.dtype(dtype).type, device, device_id)

        self._input = alloc((1, *size, 3), 'uint8')
        self._labels = alloc((1, *size), 'uint8')
        self._confidence = alloc((1, *size), confidence_dtype) if confidence_dtype else None
        self._binding = session.io_binding()
        self._binding.bind_ortvalue_input('image', self._input)
        self._binding.bind_ortvalue_output('labels', self._labels)
        if self._confidence is not None:
            self._binding.bind_ortvalue_output('confidence', self._confidence)

    def _to_host(self, value: ort.OrtValue) -> np.ndarray:
        host = value.numpy()  # device: a fresh D2H copy; cpu: a view of the bound buffer, so copy it
        return host.copy() if self._device == 'cpu' else host

    def run(self, frame: np.ndarray, confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        with self._lock:
            # update_inplace syncs the default stream after its H2D copy, and Run syncs the EP at the end.
            self._input.update_inplace(frame[None])
            self._session.run_with_iobinding(self._binding)
            labels = self._to_host(self._labels)[0]
            conf = self._to_host(self._confidence)[0] if confidence and self._confidence is not None else None
        return labels, conf


class _OpenVINORunner:
    """The openvino runtime: a compiled model and a pool of infer requests, one per concurrent caller.

    An infer request is not thread-safe, so each call takes an idle one (or makes one) and gives it back;
    outputs are copied out of the request's buffers before it goes back to the pool.
    """

    def __init__(self, source: str, has_confidence: bool, precision: str | None, threads: int) -> None:
        config: dict[str, object] = {'PERFORMANCE_HINT': 'LATENCY'}
        if precision:  # 'f32' or 'bf16'; OpenVINO's default on BF16/AMX CPUs is bf16
            config['INFERENCE_PRECISION_HINT'] = precision
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        start = time.perf_counter()
        # A package that is found but does not load (a missing native library on a robot image) must reach the
        # caller as an EngineError too, so that providers='auto' falls back to ONNX Runtime.
        try:
            import openvino as ov

            self._compiled = ov.Core().compile_model(source, 'CPU', config)
            hint = self._compiled.get_property('INFERENCE_PRECISION_HINT').to_string()  # 'bf16', 'f32', 'f16'
        except (ImportError, OSError, RuntimeError) as err:
            msg = f'{source}: OpenVINO cannot compile the model ({type(err).__name__}: {first_line(err)})'
            raise EngineError(msg) from None
        self.precision = {'f32': 'fp32', 'f16': 'fp16'}.get(hint, hint)
        _log.info('%s: OpenVINO compiled in %.1f s (%s)', source, time.perf_counter() - start, self.precision)
        names = [output.get_any_name() for output in self._compiled.outputs]
        self._labels = names.index('labels')
        self._confidence = names.index('confidence') if has_confidence else None
        self._idle: list[object] = []
        self._lock = threading.Lock()

    def run(self, frame: np.ndarray, confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        with self._lock:
            request = self._idle.pop() if self._idle else self._compiled.create_infer_request()
        try:
            request.infer({0: frame[None]})
            labels = request.get_output_tensor(self._labels).data[0].copy()
            conf = None
            if confidence and self._confidence is not None:
                conf = request.get_output_tensor(self._confidence).data[0].copy()
        finally:
            with self._lock:
                self._idle.append(request)
        return labels, conf


class SegmentationEngine:
    """One exported RTFormer graph on ONNX Runtime (or OpenVINO), fed frames of any size.

    The graph wants RGB; ``color_order='bgr'`` frames get their channels reversed in place on the
    model-size frame right after the resize (or in the one copy made when no resize is needed).

    Resize policies: ``stretch`` resizes the frame to the model size ignoring aspect ratio; ``letterbox``
    keeps the aspect ratio and pads the rest with the training mean colour, and the padding is cut off the
    result. Frames go to the model bilinearly (INTER_LINEAR); labels come back nearest-neighbour with pixel
    centres aligned (INTER_NEAREST_EXACT, matching INTER_LINEAR's sampling grid), confidence bilinearly.
    Resizes are skipped when sizes already match.

    Thread safety: ``infer`` may be called from several threads. On CPU each call has its own buffers;
    with I/O binding (GPU) the device buffers are shared and copy-in/run/copy-out is serialised by a lock
    (preprocessing and postprocessing still overlap).

    Attributes:
        metadata: what the exported file says about itself (classes, palette, input size, ...).
        provider: the ORT provider actually running the graph, e.g. 'CUDAExecutionProvider', or 'OpenVINO'.
        precision: what the runtime computes the float parts in: 'fp32', or 'bf16' where OpenVINO chose it
            (an INT8 file's quantized layers run in int8 either way; see ``metadata.precision``).
        input_size: (H, W) of the graph.
        has_confidence: whether the graph has a ``confidence`` output.
        model_path: the model file.

    Example::

        with SegmentationEngine('models/rtformer_slim_camvid.onnx') as engine:
            seg = engine.infer(frame_bgr, color_order='bgr')
            labels = seg.labels  # (H, W) uint8 at the frame's size
    """

    def __init__(
            self,
            model_path: str | Path,
            providers: str | Sequence[str] = 'auto',
            device_id: int = 0,
            cache_dir: str | Path | None = None,
            resize: str = 'stretch',
            warmup: int = 2,
            intra_op_threads: int = 0,
            io_binding: bool | None = None,
            allow_spinning: bool = True,
    ) -> None:
        """Load the model, pick the provider, bind buffers and warm up.

        Args:
            model_path: exported ``.onnx`` file with rtformer metadata.
            providers: 'auto' (TensorRT -> CUDA -> OpenVINO -> CPU, whatever is available), a short name
                ('tensorrt', 'cuda', 'openvino', 'openvino-fp32', 'openvino-bf16', 'cpu'), or a list (or
                comma-separated string) of short or full ORT provider names. OpenVINO runs the graph when it
                comes first ('openvino': the float parts in bf16 where the CPU has it, else fp32;
                'openvino-fp32', 'openvino-bf16': that precision always). An explicit provider that is not
                available is an error, never a silent fallback.
            device_id: GPU index for the CUDA/TensorRT providers.
            cache_dir: TensorRT engine and timing cache folder (default ``~/.cache/rtformer_ros/tensorrt``).
            resize: default resize policy, 'stretch' or 'letterbox'.
            warmup: inference runs on a dummy frame before returning (first GPU runs are slow).
            intra_op_threads: ORT (or OpenVINO) inference threads; 0 keeps the runtime's default.
            io_binding: bind pre-allocated buffers; None = on GPU providers only. True on CPU exercises the
                GPU code path with CPU buffers. OpenVINO ignores it.
            allow_spinning: let ORT's intra-op threads busy-wait for work after each run (ORT's default, best
                for back-to-back runs as in a benchmark). False makes them sleep: spinning threads keep burning
                CPU after every frame, which on a small CPU machine slows the node's publishing and every
                other process.

        Raises:
            EngineError: missing or unreadable model, broken export contract, missing metadata, or an
                unavailable provider; the message names the file and the problem.
            ValueError: a bad argument (resize policy, negative counts).
        """
        self.model_path = Path(model_path)
        source = str(model_path)
        self._source = source
        self.resize = _check_choice('resize', resize, _RESIZE_POLICIES)
        if warmup < 0 or intra_op_threads < 0 or device_id < 0:
            msg = f'warmup, intra_op_threads and device_id must be >= 0, got {warmup}, {intra_op_threads}, {device_id}'
            raise ValueError(msg)
        if not self.model_path.is_file():
            msg = f'{source}: no such model file'
            raise EngineError(msg)

        names, explicit = _resolve_providers(providers, source)
        openvino = names[0] if names[0] in _OPENVINO else None
        names = [name for name in names if name not in _OPENVINO] or [CPU]  # ORT: contract, metadata, fallback
        cache = Path(cache_dir) if cache_dir is not None else cache_dir_of('tensorrt')
        if TENSORRT in names:
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                msg = f'{cache}: cannot create the TensorRT cache folder ({err.strerror})'
                raise EngineError(msg) from None
        self._session = _create_session(source, names, device_id, cache, intra_op_threads, allow_spinning)
        active = self._session.get_providers()
        if explicit:
            missing = [name for name in names if name not in active]
            if missing:
                msg = f'{source}: provider {missing[0]} failed to initialise (see the ONNX Runtime log above)'
                raise EngineError(msg)
        elif active[0] != names[0]:
            _log.warning('%s: %s failed to initialise, falling back to %s', source, names[0], active[0])
            options = self._session.get_provider_options().get(active[0], {})
            if active[0] in _GPU_PROVIDERS and options.get('device_id') != str(device_id):
                # ORT's own fallback retried without our provider options (device_id): rebuild with them.
                names = names[names.index(active[0]):]
                self._session = _create_session(source, names, device_id, cache, intra_op_threads, allow_spinning)
                active = self._session.get_providers()
        # No silent provider switch at run time either: our bound buffers live on the chosen device.
        self._session.disable_fallback()
        self.provider: str = active[0]

        self.input_size, confidence_dtype = _check_graph(self._session, source)
        self.precision = 'fp32'  # what the runtime computes in: 'bf16' where OpenVINO chose it
        self.has_confidence = confidence_dtype is not None
        try:
            self.metadata = ModelMetadata.from_props(self._session.get_modelmeta().custom_metadata_map, source)
        except MetadataError as err:
            raise EngineError(str(err)) from None
        if tuple(self.metadata.input_size) != self.input_size:
            msg = f'{source}: metadata input_size {self.metadata.input_size} differs from the graph {self.input_size}'
            raise EngineError(msg)
        # Letterbox padding: the training mean colour, which the graph normalises to ~0.
        self._pad = np.array([round(m * 255) for m in self.metadata.mean], np.uint8)

        on_gpu = self.provider in _GPU_PROVIDERS
        if io_binding is None:
            io_binding = on_gpu
        self._runner: _SessionRunner | _BoundRunner | _OpenVINORunner | None = None
        if openvino is not None and not explicit and self.metadata.precision != 'int8':
            # 'auto' keeps fp32/fp16 files exact on ORT: OpenVINO would run them in bf16 on CPUs that have it
            # (faster, 99.8 % of labels equal) and slower than ORT in fp32 elsewhere; providers='openvino' asks.
            openvino = None
        if openvino is not None:
            try:
                hint = {OPENVINO_FP32: 'f32', OPENVINO_BF16: 'bf16'}.get(openvino)  # None: OpenVINO's choice
                self._runner = _OpenVINORunner(source, self.has_confidence, hint, intra_op_threads)
            except EngineError as err:
                if explicit:
                    raise
                _log.warning('%s; falling back to %s', err, self.provider)
            else:
                self.provider, self.precision, io_binding = openvino, self._runner.precision, False
        if self._runner is None and io_binding:
            self._runner = _BoundRunner(self._session, self.input_size, confidence_dtype,
                                        'cuda' if on_gpu else 'cpu', device_id)
        elif self._runner is None:
            self._runner = _SessionRunner(self._session, self.has_confidence)
        _log.info('%s: %s %s (%s) on %s in %s (input %dx%d, network %dx%d, %d classes, %s)', source,
                  self.metadata.variant, self.metadata.dataset, self.metadata.precision, self.provider,
                  self.precision, *self.input_size, *self.metadata.net_size, self.metadata.num_classes,
                  'io binding' if io_binding else 'plain run')
        self._warm_up(warmup)

    def _warm_up(self, runs: int) -> None:
        if runs == 0:
            return
        frame = np.empty((*self.input_size, 3), np.uint8)
        frame[:] = self._pad
        start = time.perf_counter()
        for _ in range(runs):
            self.infer(frame)
        _log.info('%s: warm-up of %d runs took %.1f ms', self._source, runs, (time.perf_counter() - start) * 1e3)

    def infer(self, image: np.ndarray, color_order: str = 'rgb', resize: str | None = None, *,
              confidence: bool = True) -> Segmentation:
        """Segment one frame.

        Args:
            image: (H, W, 3) uint8 frame of any size; need not be contiguous (a zero-copy view of a ROS
                message buffer is fine).
            color_order: 'rgb' or 'bgr' channel order of ``image``.
            resize: 'stretch' or 'letterbox'; None uses the engine's default.
            confidence: also return the confidence map (when the model has one); False skips its copy
                and resize.

        Returns:
            Labels (and confidence) at the image's own (H, W), and the time spent here.

        Raises:
            ValueError: the image is not uint8 HxWx3, or an unknown color_order / resize.
            EngineError: the engine is closed, or ONNX Runtime failed to run.
        """
        start = time.perf_counter()
        frame, window = self._preprocess(image, color_order, resize)
        runner = self._runner
        if runner is None:
            msg = f'{self._source}: engine is closed'
            raise EngineError(msg)
        image_hw = (image.shape[0], image.shape[1])
        try:
            labels, conf = runner.run(frame, confidence)
        except _ORT_ERRORS as err:
            msg = f'{self._source}: inference failed ({first_line(err)})'
            raise EngineError(msg) from None
        labels = _restore(labels, window, image_hw, cv2.INTER_NEAREST_EXACT)
        if conf is not None:
            conf = _restore(conf.astype(np.float32, copy=False), window, image_hw, cv2.INTER_LINEAR)
        return Segmentation(labels, conf, (time.perf_counter() - start) * 1e3)

    def preprocess(self, image: np.ndarray, color_order: str = 'rgb', resize: str | None = None) -> np.ndarray:
        """The (H, W, 3) RGB frame at the model size that ``infer`` would feed the graph for ``image``.

        What INT8 calibration feeds the graph, so it sees frames exactly as at run time.

        Raises:
            ValueError: the image is not uint8 HxWx3, or an unknown color_order / resize.
        """
        return self._preprocess(image, color_order, resize)[0]

    def _preprocess(self, image: np.ndarray, color_order: str, resize: str | None) -> tuple[np.ndarray, _Window]:
        image = _check_image(image)
        bgr = _check_choice('color_order', color_order, _COLOR_ORDERS) == 'bgr'
        policy = self.resize if resize is None else _check_choice('resize', resize, _RESIZE_POLICIES)
        window = _fit((image.shape[0], image.shape[1]), self.input_size, policy)
        return self._prepare(image, window, bgr), window

    def _prepare(self, image: np.ndarray, window: _Window, bgr: bool) -> np.ndarray:
        """A contiguous (H, W, 3) RGB frame at the model size; ``image`` itself when nothing needs doing."""
        height, width = self.input_size
        if image.shape[:2] == (height, width) and (window.height, window.width) == (height, width):
            if bgr:
                return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # the one copy, channels reversed on the way
            return np.ascontiguousarray(image)
        frame = np.empty((height, width, 3), np.uint8)
        rows, cols = window.slices
        if (window.height, window.width) != (height, width):  # letterbox: paint only the padding
            frame[:rows.start] = self._pad
            frame[rows.stop:] = self._pad
            frame[rows, :cols.start] = self._pad
            frame[rows, cols.stop:] = self._pad
        region = frame[rows, cols]
        cv2.resize(image, (window.width, window.height), dst=region, interpolation=cv2.INTER_LINEAR)
        if bgr:
            cv2.cvtColor(region, cv2.COLOR_BGR2RGB, dst=region)
        return frame

    def close(self) -> None:
        """Release the session and its buffers; later ``infer`` calls raise EngineError."""
        self._runner = None
        self._session = None  # type: ignore[assignment]

    def __enter__(self) -> SegmentationEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()




def _create_session(source: str, providers: list[str], device_id: int, cache_dir: Path,
                    intra_op_threads: int, allow_spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry('session.intra_op.allow_spinning', '1' if allow_spinning else '0')
    if TENSORRT in providers:
        _log.info('%s: creating the TensorRT session (the first build of an engine can take minutes; cached in %s)',
                  source, cache_dir)
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(
            source, sess_options=options, providers=providers,
            provider_options=[_provider_options(name, device_id, cache_dir) for name in providers])
    except _ORT_ERRORS as err:
        msg = f'{source}: cannot load the ONNX model ({first_line(err)})'
        raise EngineError(msg) from None
    _log.info('%s: session created in %.1f s', source, time.perf_counter() - start)
    return session
