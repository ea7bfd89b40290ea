"""The work of ``rtformer_node``, shared by the plain node (``node.py``) and the managed one (``lifecycle.py``).

A ``Segmenter`` lives on a host rclpy node and follows the lifecycle states: built (parameters declared),
``configure`` (model loaded), ``activate`` (publishers, subscriptions, diagnostics timer, worker thread),
``deactivate`` (all of that stopped and destroyed), ``cleanup`` (ONNX Runtime session released). The plain
node runs configure and activate at start and the reverse at exit.

Threading: subscription callbacks run in the executor and only check the message header against its buffer
(no pixel access) and stash the message in the camera's latest-frame slot. ONE worker thread decodes, infers
and publishes. Decoding happens in the worker, not the callback: it is O(pixels) (a JPEG decode takes
milliseconds), would hold up the executor (camera_info, parameter services, other cameras), and would be
wasted on frames that a newer one replaces before the worker gets to them.

Lazy: a frame is segmented only while someone subscribes to one of its camera's outputs (else it counts as
``skipped``), and each optional output (colour, overlay, their JPEGs, confidence, camera_info) is built only
while subscribed.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from rtformer_ros.engine import EngineError, SegmentationEngine
from rtformer_ros.image.codec import (
    CodecError,
    check_compressed,
    check_image,
    decode_compressed,
    decode_image,
    image_message,
    jpeg_message,
)
from rtformer_ros.image.render import blend, colorize, palette_lut
from rtformer_ros.ros.diagnostics import CameraStats, Limits, status_name
from rtformer_ros.ros.params import PARAMETERS, check_value, declare_parameters
from rtformer_ros.ros.qos import CAMERA_INFO_DEPTH, LATCHED_QOS, OUTPUT_QOS, input_profile
from rtformer_ros.ros.slots import LatestFrameSlots
from rtformer_ros.util import NS_PER_S, stamp_ns

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.publisher import Publisher
    from std_msgs.msg import Header

    from rtformer_ros.image.codec import Decoded
    from rtformer_ros.metadata import ModelMetadata

__all__ = ['EXIT_FAILED', 'Segmenter', 'class_info_json', 'output_topics']

EXIT_FAILED = 2
"""Exit code after ``max_failures`` consecutive inference failures with ``on_failure:=exit`` (1: start-up error)."""

_LOG_THROTTLE_S = 5.0  # one warning per topic and reason per this many seconds


def output_topics(has_confidence: bool = True) -> tuple[str, ...]:
    """Topics one camera publishes, relative to its prefix."""
    names = ['labels', 'color', 'color/compressed', 'overlay', 'overlay/compressed', 'camera_info', 'class_info']
    if has_confidence:
        names.insert(5, 'confidence')
    return tuple(f'segmentation/{name}' for name in names)


def class_info_json(meta: ModelMetadata) -> str:
    """The documented ``segmentation/class_info`` payload: dataset, variant, classes with colours, ignore id."""
    classes = [{'id': i, 'name': name, 'color': list(color)}
               for i, (name, color) in enumerate(zip(meta.class_names, meta.palette, strict=True))]
    return json.dumps({'dataset': meta.dataset, 'variant': meta.variant, 'classes': classes,
                       'ignore_index': meta.ignore_index})


def _info_size(info: CameraInfo) -> tuple[int, int]:
    """(width, height) of the images a camera_info describes: its ROI if set, divided by the binning."""
    width = info.roi.width or info.width
    height = info.roi.height or info.height
    return width // max(1, info.binning_x), height // max(1, info.binning_y)


class _Frame(NamedTuple):
    msg: Image | CompressedImage
    received_ns: int  # time.monotonic_ns() in the callback


@dataclass(eq=False)
class _Camera:
    """Publishers and state of one camera."""

    name: str  # '' for the plain topics
    input_topic: str  # resolved, as subscribed
    labels: Publisher
    color: Publisher
    color_jpeg: Publisher
    overlay: Publisher
    overlay_jpeg: Publisher
    confidence: Publisher | None
    camera_info: Publisher
    class_info: Publisher
    stats: CameraStats
    frame_id: str = ''  # of the latest frame: the status's hardware_id
    infos: deque[CameraInfo] = field(default_factory=lambda: deque(maxlen=2 * CAMERA_INFO_DEPTH))
    infos_lock: threading.Lock = field(default_factory=threading.Lock)

    def outputs(self) -> list[Publisher]:
        """The per-frame publishers (not the latched class_info)."""
        outs = [self.labels, self.color, self.color_jpeg, self.overlay, self.overlay_jpeg, self.camera_info]
        return outs + ([self.confidence] if self.confidence is not None else [])

    def wanted(self) -> bool:
        """Whether anyone subscribes to an output of this camera."""
        return any(publisher.get_subscription_count() > 0 for publisher in self.outputs())


class _RosLogHandler(logging.Handler):
    """Forwards the engine's Python logging (provider choice, TensorRT builds) to the node's logger."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        else:
            self._logger.info(text)


class Segmenter:
    """Subscribes camera images, segments them on one worker thread, publishes masks and diagnostics."""

    def __init__(self, node: Node, on_fatal: Callable[[int], None]) -> None:
        """Declare the parameters on ``node``.

        Args:
            node: the host (a Node or a LifecycleNode); everything is created on it.
            on_fatal: called from the worker with ``EXIT_FAILED`` when inference failed ``max_failures``
                times in a row and ``on_failure`` is ``exit``; the host ends the process with that code.

        Raises:
            ParamError: a parameter override is invalid.
        """
        self._node = node
        self._on_fatal = on_fatal
        node.add_on_set_parameters_callback(self._check_parameters)
        self.params = declare_parameters(node)
        # Runtime parameters are read through this dict, updated after each accepted set.
        self._live = {spec.name: self.params[spec.name] for spec in PARAMETERS if not spec.read_only}
        node.add_post_set_parameters_callback(self._apply_parameters)
        self._log_handler = _RosLogHandler(node)
        self._engine: SegmentationEngine | None = None
        self._model: Path | None = None
        self._cameras: dict[str, _Camera] = {}
        self._slots: LatestFrameSlots[_Frame] | None = None
        self._worker: threading.Thread | None = None
        self._entities: list[tuple[Callable[[Any], object], Any]] = []  # (destroy, entity) made by activate
        self._diagnostics: Publisher | None = None
        self._last_log: dict[tuple[str, str], float] = {}
        self._failures = 0  # consecutive inference failures, any camera
        self._stopping = False  # deactivate is under way: a failing frame in hand is not a failure

    # --- lifecycle ------------------------------------------------------------------------------------------

    def configure(self, model: Path) -> None:
        """Load the model into an ONNX Runtime session (TensorRT engines are built here where present).

        Raises:
            EngineError: the model cannot be loaded.
        """
        engine_log = logging.getLogger('rtformer_ros')
        engine_log.addHandler(self._log_handler)
        engine_log.setLevel(logging.INFO)
        try:
            self._engine = SegmentationEngine(model, providers=str(self.params['providers']),
                                              device_id=int(self.params['device_id']),  # type: ignore[arg-type]
                                              cache_dir=str(self.params['cache_dir']) or None,
                                              resize=str(self._live['resize']),
                                              # Frames come one at a time: spinning intra-op threads would
                                              # only take CPU from publishing (GPU runs barely use them).
                                              allow_spinning=False)
        except EngineError:
            engine_log.removeHandler(self._log_handler)
            raise
        self._model = model
        self._lut = palette_lut(self._engine.metadata.palette)
        self._class_info = String(data=class_info_json(self._engine.metadata))

    def activate(self) -> None:
        """Create publishers and subscriptions, start the diagnostics timer and the worker."""
        engine = self._engine
        assert engine is not None, 'activate before configure'
        compressed = self.params['input_transport'] == 'compressed'
        names = list(self.params['cameras']) or ['']  # type: ignore[call-overload]
        self._failures = 0
        self._stopping = False
        slots: LatestFrameSlots[_Frame] = LatestFrameSlots(names)
        self._slots = slots  # before the subscriptions: their callbacks put into it
        self._cameras = {name: self._create_camera(name, compressed, str(self.params['input_qos']))
                         for name in names}
        node = self._node
        self._diagnostics = self._add(node.destroy_publisher,
                                      node.create_publisher(DiagnosticArray, '/diagnostics', 10))
        self._add(node.destroy_timer, node.create_timer(1.0, self._publish_diagnostics))
        self._worker = threading.Thread(target=self._serve, args=(slots, self._cameras), name='rtformer_worker',
                                        daemon=True)
        self._worker.start()
        self._node.get_logger().info(
            f'{self._model} on {engine.provider} ({engine.input_size[0]}x{engine.input_size[1]}, '
            f'network {engine.metadata.net_size[0]}x{engine.metadata.net_size[1]}, '
            f'{engine.metadata.num_classes} classes); listening on '
            f'{", ".join(cam.input_topic for cam in self._cameras.values())}')

    def deactivate(self) -> None:
        """Stop the worker (it finishes the frame in hand) and destroy what ``activate`` created."""
        # A frame still in hand after the join (a first TensorRT/OpenVINO run can be slow) may fail on a destroyed
        # publisher or a released engine: that ends the worker quietly instead of counting towards on_failure.
        self._stopping = True
        if self._slots is not None:
            self._slots.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
        self._worker = self._slots = self._diagnostics = None
        for destroy, entity in reversed(self._entities):
            destroy(entity)
        self._entities.clear()
        self._cameras = {}

    def cleanup(self) -> None:
        """Release the ONNX Runtime session and stop forwarding the engine's log."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
            logging.getLogger('rtformer_ros').removeHandler(self._log_handler)
            self._node.get_logger().info(f'{self._model}: ONNX Runtime session released')

    # --- setup ----------------------------------------------------------------------------------------------

    def _add(self, destroy: Callable[[Any], object], entity: Any) -> Any:
        self._entities.append((destroy, entity))
        return entity

    def _create_camera(self, name: str, compressed: bool, input_qos: str) -> _Camera:
        node = self._node
        prefix = f'{name}/' if name else ''
        out = f'{prefix}segmentation/'
        # As image_transport: the transport's topic is the *resolved* image topic plus '/compressed', so remaps
        # and namespaces of `image` carry over to the compressed input.
        image_topic = node.resolve_topic_name(f'{prefix}image')
        input_topic = f'{image_topic}/compressed' if compressed else image_topic

        def publisher(msg_type: type, topic: str, qos: object = OUTPUT_QOS) -> Publisher:
            return self._add(node.destroy_publisher, node.create_publisher(msg_type, out + topic, qos))

        assert self._engine is not None
        camera = _Camera(
            name=name,
            input_topic=input_topic,
            labels=publisher(Image, 'labels'),
            color=publisher(Image, 'color'),
            color_jpeg=publisher(CompressedImage, 'color/compressed'),
            overlay=publisher(Image, 'overlay'),
            overlay_jpeg=publisher(CompressedImage, 'overlay/compressed'),
            confidence=publisher(Image, 'confidence') if self._engine.has_confidence else None,
            camera_info=publisher(CameraInfo, 'camera_info'),
            class_info=publisher(String, 'class_info', LATCHED_QOS),
            # Named by the node's full name: /front/rtformer_node and /rear/rtformer_node stay apart.
            stats=CameraStats(status_name(node.get_fully_qualified_name(), name)),
        )
        camera.class_info.publish(self._class_info)
        self._add(node.destroy_subscription, node.create_subscription(
            CompressedImage if compressed else Image, input_topic,
            lambda msg: self._on_image(camera, msg), input_profile(input_qos),
            qos_overriding_options=QoSOverridingOptions.with_default_policies()))
        self._add(node.destroy_subscription, node.create_subscription(
            CameraInfo, f'{prefix}camera_info', lambda msg: self._on_camera_info(camera, msg),
            input_profile(input_qos, CAMERA_INFO_DEPTH)))
        return camera

    # --- executor thread: parameters, callbacks, diagnostics -------------------------------------------------

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for param in parameters:
            reason = check_value(param.name, param.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        for param in parameters:
            if param.name in self._live:
                self._live[param.name] = param.value

    def _on_image(self, camera: _Camera, msg: Image | CompressedImage) -> None:
        now_ns = self._node.get_clock().now().nanoseconds
        camera.stats.received((now_ns - stamp_ns(msg.header.stamp)) / NS_PER_S)
        camera.frame_id = msg.header.frame_id
        try:
            if isinstance(msg, Image):
                check_image(msg, int(self._live['max_pixels']))
            else:
                check_compressed(msg, int(self._live['max_pixels']))  # the header's size: no decoding
        except CodecError as err:
            self._drop(camera, str(err))
            return
        if not self._live['enabled'] or not camera.wanted():
            camera.stats.count('skipped')
            return
        slots = self._slots
        if slots is not None and slots.put(camera.name, _Frame(msg, time.monotonic_ns())) is not None:
            camera.stats.count('dropped_stale')

    def _on_camera_info(self, camera: _Camera, msg: CameraInfo) -> None:
        with camera.infos_lock:
            camera.infos.append(msg)

    def _limits(self) -> Limits:
        live = self._live
        return Limits(stale_after=float(live['stale_after']), max_stamp_lag=float(live['max_stamp_lag']),
                      ood_window=int(live['ood_window']), ood_min_confidence=float(live['ood_min_confidence']),
                      ood_max_low_share=float(live['ood_max_low_share']))

    def _publish_diagnostics(self) -> None:
        """One status per camera (from the timer, and from the worker when it gives up)."""
        publisher, engine = self._diagnostics, self._engine
        if publisher is None or engine is None:
            return
        limits = self._limits()
        failing = self._failures >= int(self._live['max_failures'])
        extra = [('consecutive_failures', str(self._failures)), ('provider', engine.provider),
                 ('model', str(self._model)), ('resize', str(self._live['resize'])),
                 ('enabled', str(bool(self._live['enabled'])).lower())]
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        for camera in list(self._cameras.values()):
            array.status.append(camera.stats.report(
                camera.frame_id or camera.input_topic, limits, [('input_topic', camera.input_topic), *extra],
                paused=not self._live['enabled'], failing=failing))
        publisher.publish(array)

    def _log_throttled(self, camera: _Camera, reason: str) -> None:
        """Log a warning about ``camera``'s input, at most once per topic and reason per throttle period."""
        key = (camera.input_topic, reason)
        now = time.monotonic()
        if now - self._last_log.get(key, -_LOG_THROTTLE_S) >= _LOG_THROTTLE_S:
            if len(self._last_log) > 256:  # reasons carry sizes; keep the table bounded
                self._last_log.clear()
            self._last_log[key] = now
            self._node.get_logger().warning(f'{camera.input_topic}: {reason}')

    def _drop(self, camera: _Camera, reason: str) -> None:
        """Count a malformed frame and log it (throttled)."""
        camera.stats.count('dropped_malformed')
        self._log_throttled(camera, f'dropped frame: {reason}')

    # --- worker thread ---------------------------------------------------------------------------------------

    def _serve(self, slots: LatestFrameSlots[_Frame], cameras: dict[str, _Camera]) -> None:
        while (job := slots.take()) is not None:
            camera = cameras[job[0]]
            try:
                self._serve_frame(camera, job[1])
            except CodecError as err:
                self._drop(camera, str(err))
                continue
            except Exception as err:  # no message may kill the worker; count, log, and give up only if told
                if self._failed(camera, err):
                    return
                continue
            self._failures = 0

    def _failed(self, camera: _Camera, err: Exception) -> bool:
        """Count an inference failure; True when the worker must stop (``on_failure:=exit``, or deactivating)."""
        if self._stopping:
            return True
        camera.stats.count('failed')
        self._failures += 1
        logger = self._node.get_logger()
        if self._failures < int(self._live['max_failures']):
            logger.error(f'{camera.input_topic}: frame failed: {err}', throttle_duration_sec=_LOG_THROTTLE_S)
            return False
        if self._live['on_failure'] == 'exit':
            logger.fatal(f'{camera.input_topic}: {self._failures} inference failures in a row, the last: {err}; '
                         f'exiting with code {EXIT_FAILED} (on_failure:=exit)')
            self._publish_diagnostics()  # the ERROR status goes out before the process does
            publisher = self._diagnostics
            if publisher is not None:  # and is acknowledged by its readers (bounded), not lost with the process
                publisher.wait_for_all_acked(Duration(seconds=1))
            self._on_fatal(EXIT_FAILED)
            return True
        logger.error(f'{camera.input_topic}: {self._failures} inference failures in a row, the last: {err}; '
                     'going on (on_failure:=keep)', throttle_duration_sec=_LOG_THROTTLE_S)
        return False

    def _serve_frame(self, camera: _Camera, frame: _Frame) -> None:
        engine = self._engine
        if engine is None:
            msg = 'engine released'
            raise EngineError(msg)
        start = time.monotonic_ns()
        live = self._live
        max_pixels = int(live['max_pixels'])
        msg = frame.msg
        decoded = (decode_image(msg, max_pixels) if isinstance(msg, Image)
                   else decode_compressed(msg, max_pixels))
        decoded_at = time.monotonic_ns()
        ood_window = int(live['ood_window'])
        publish_confidence = (camera.confidence is not None and bool(live['publish_confidence'])
                              and camera.confidence.get_subscription_count() > 0)
        seg = engine.infer(decoded.image, decoded.color_order, str(live['resize']),
                           confidence=publish_confidence or ood_window > 0)
        inferred_at = time.monotonic_ns()
        labels = image_message(msg.header, seg.labels, 'mono8')
        encoded_at = time.monotonic_ns()
        camera.labels.publish(labels)
        published_at = time.monotonic_ns()
        if seg.confidence is not None and ood_window > 0:
            low = np.count_nonzero(seg.confidence < float(live['ood_threshold'])) / seg.confidence.size
            camera.stats.record_confidence(float(seg.confidence.mean()), low, ood_window)
        self._publish_extras(camera, msg.header, decoded, seg.labels,
                             seg.confidence if publish_confidence else None)
        done_at = time.monotonic_ns()
        camera.stats.count('served')
        camera.stats.record({
            'latency': (published_at - frame.received_ns) / 1e6, 'wait': (start - frame.received_ns) / 1e6,
            'decode': (decoded_at - start) / 1e6, 'infer': (inferred_at - decoded_at) / 1e6,
            'encode': (encoded_at - inferred_at) / 1e6, 'publish': (published_at - encoded_at) / 1e6,
            'extras': (done_at - published_at) / 1e6})

    def _publish_extras(self, camera: _Camera, header: Header, decoded: Decoded, labels: np.ndarray,
                        confidence: np.ndarray | None) -> None:
        """Colour, overlay (raw and JPEG), confidence and camera_info, each only while subscribed."""
        wants = {pub: pub.get_subscription_count() > 0 for pub in camera.outputs()}
        if wants[camera.color] or wants[camera.color_jpeg] or wants[camera.overlay] or wants[camera.overlay_jpeg]:
            color = colorize(labels, self._lut)
            self._send(camera, header, color, (camera.color, camera.color_jpeg, 'color'), wants)
            if wants[camera.overlay] or wants[camera.overlay_jpeg]:
                overlay = blend(decoded.rgb(), color, float(self._live['overlay_alpha']))
                self._send(camera, header, overlay, (camera.overlay, camera.overlay_jpeg, 'overlay'), wants)
        if confidence is not None and camera.confidence is not None:
            camera.confidence.publish(image_message(header, confidence, '32FC1'))
            camera.stats.count('published_confidence')
        if wants[camera.camera_info]:
            info = self._camera_info_for(camera, header, labels.shape)
            if info is not None:
                camera.camera_info.publish(info)
                camera.stats.count('published_camera_info')

    def _send(self, camera: _Camera, header: Header, rgb: np.ndarray, to: tuple[Publisher, Publisher, str],
              wants: dict[Publisher, bool]) -> None:
        """``rgb`` as rgb8 and as JPEG, to whichever of the (raw, JPEG, counter name) publishers has subscribers."""
        raw, jpeg, name = to
        if wants[raw]:
            raw.publish(image_message(header, rgb, 'rgb8'))
            camera.stats.count(f'published_{name}')
        if wants[jpeg]:
            jpeg.publish(jpeg_message(header, rgb, int(self._live['jpeg_quality'])))
            camera.stats.count(f'published_{name}_compressed')

    def _camera_info_for(self, camera: _Camera, header: Header, size_hw: tuple[int, ...]) -> CameraInfo | None:
        """The camera_info with the image's stamp, else the latest one, carrying the image's header.

        None (counted in ``dropped_camera_info``) when its stamp is more than ``camera_info_max_age`` from the
        image's (the camera_info topic stopped) or it describes another image size.
        """
        with camera.infos_lock:
            if not camera.infos:
                return None
            match = next((info for info in reversed(camera.infos) if info.header.stamp == header.stamp),
                         camera.infos[-1])
        age = abs(stamp_ns(header.stamp) - stamp_ns(match.header.stamp)) / NS_PER_S
        size = (size_hw[1], size_hw[0])
        reason = None
        if age > float(self._live['camera_info_max_age']):
            reason = f'camera_info {age:.2f} s from the image stamp (camera_info_max_age)'
        elif _info_size(match) != size:
            reason = f'camera_info for {"x".join(map(str, _info_size(match)))} images, image is {size[0]}x{size[1]}'
        if reason is not None:
            camera.stats.count('dropped_camera_info')
            self._log_throttled(camera, f'not forwarding {reason}')
            return None
        info = copy.copy(match)  # shallow: the cached message keeps its own header for later matching
        info.header = header
        return info
