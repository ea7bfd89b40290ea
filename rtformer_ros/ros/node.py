"""``rtformer_node``: RTFormer semantic segmentation of camera images, served by ONNX Runtime.

Topics are relative (namespaces and remaps work); with ``cameras:=[front, left]`` each name prefixes them.

In:  ``image`` (sensor_msgs/Image) or ``image/compressed`` (``input_transport:=compressed``), ``camera_info``.
Out: ``segmentation/labels`` (mono8 class ids at the input size, input header), ``segmentation/color`` and
``segmentation/overlay`` (rgb8), ``segmentation/confidence`` (32FC1 in [0, 1], if the model has it),
``segmentation/camera_info``, latched ``segmentation/class_info`` (std_msgs/String JSON), ``/diagnostics``.
See docs/node.md.

Threading: subscription callbacks run in the executor and only check the message header against its buffer
(no pixel access) and stash the message in the camera's latest-frame slot. ONE worker thread decodes, infers
and publishes. Decoding happens in the worker, not the callback: it is O(pixels) (a JPEG decode takes
milliseconds), would hold up the executor (camera_info, parameter services, other cameras), and would be
wasted on frames that a newer one replaces before the worker gets to them.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from rtformer_ros.engine import EngineError, SegmentationEngine
from rtformer_ros.ros.codec import (
    CodecError,
    check_compressed,
    check_image,
    decode_compressed,
    decode_image,
    image_message,
)
from rtformer_ros.ros.diagnostics import CameraStats
from rtformer_ros.ros.params import ParamError, check_value, declare_parameters
from rtformer_ros.ros.qos import CAMERA_INFO_DEPTH, LATCHED_QOS, OUTPUT_QOS, input_profile
from rtformer_ros.ros.render import blend, colorize, palette_lut
from rtformer_ros.ros.slots import LatestFrameSlots

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    from rclpy.parameter import Parameter
    from rclpy.publisher import Publisher
    from std_msgs.msg import Header

    from rtformer_ros.metadata import ModelMetadata

__all__ = ['NODE_NAME', 'NodeError', 'SegmentationNode', 'class_info_json', 'main', 'output_topics',
           'resolve_model']

NODE_NAME = 'rtformer_node'
_LOG_THROTTLE_S = 5.0  # one warning per topic and reason per this many seconds
_REPO_MODELS = Path(__file__).resolve().parents[2] / 'models'


class NodeError(RuntimeError):
    """The node cannot start: a parameter or the model path is unusable."""


def output_topics(has_confidence: bool = True) -> tuple[str, ...]:
    """Topics one camera publishes, relative to its prefix."""
    names = ['labels', 'color', 'overlay', 'camera_info', 'class_info']
    if has_confidence:
        names.insert(3, 'confidence')
    return tuple(f'segmentation/{name}' for name in names)


def _model_dirs() -> list[Path]:
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory('rtformer_ros')) / 'models')
    except (ImportError, LookupError, OSError, ValueError):  # no ament index here (plain venv, source tree)
        pass
    dirs.append(_REPO_MODELS)
    return dirs


def resolve_model(name: str) -> Path:
    """The model file for the ``model`` parameter: an existing path, else a file name in a models/ folder.

    Raises:
        NodeError: empty, or not found anywhere.
    """
    if not name.strip():
        msg = ("parameter 'model' is empty: pass model:=<file.onnx> "
               '(variant:=base needs model:=... until a base model ships)')
        raise NodeError(msg)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    searched = [path]
    if not path.is_absolute() and len(path.parts) == 1:
        searched = [folder / name for folder in _model_dirs()]
        for candidate in searched:
            if candidate.is_file():
                return candidate
    msg = f'model {name}: no such file (looked for {", ".join(str(p) for p in searched)})'
    raise NodeError(msg)


def class_info_json(meta: ModelMetadata) -> str:
    """The documented ``segmentation/class_info`` payload: dataset, variant, classes with colours, ignore id."""
    classes = [{'id': i, 'name': name, 'color': list(color)}
               for i, (name, color) in enumerate(zip(meta.class_names, meta.palette, strict=True))]
    return json.dumps({'dataset': meta.dataset, 'variant': meta.variant, 'classes': classes,
                       'ignore_index': meta.ignore_index})


class _Frame(NamedTuple):
    msg: Image | CompressedImage
    received_ns: int  # time.monotonic_ns() in the callback


@dataclass(eq=False)
class _Camera:
    """Publishers and state of one camera."""

    name: str  # '' for the plain topics
    input_topic: str
    labels: Publisher
    color: Publisher
    overlay: Publisher
    confidence: Publisher | None
    camera_info: Publisher
    class_info: Publisher
    stats: CameraStats
    infos: deque[CameraInfo] = field(default_factory=lambda: deque(maxlen=2 * CAMERA_INFO_DEPTH))
    infos_lock: threading.Lock = field(default_factory=threading.Lock)


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


class SegmentationNode(Node):
    """Subscribes camera images, segments them on one worker thread, publishes masks and diagnostics."""

    def __init__(self, **kwargs: object) -> None:
        """Declare parameters, load the engine, create publishers and subscriptions, start the worker.

        Raises:
            ParamError: a parameter override is invalid.
            NodeError: the model cannot be found.
            EngineError: the model cannot be loaded.
        """
        super().__init__(NODE_NAME, **kwargs)  # type: ignore[arg-type]
        self._worker: threading.Thread | None = None  # destroy_node may run on a half-built node
        self.add_on_set_parameters_callback(self._check_parameters)
        params = declare_parameters(self)
        self._live = {name: params[name] for name in ('overlay_alpha', 'publish_confidence', 'resize',
                                                       'max_pixels')}
        self.add_post_set_parameters_callback(self._apply_parameters)

        model = resolve_model(str(params['model']))
        self._log_handler = _RosLogHandler(self)
        engine_log = logging.getLogger('rtformer_ros')
        engine_log.addHandler(self._log_handler)
        engine_log.setLevel(logging.INFO)
        try:
            self._engine = SegmentationEngine(model, providers=str(params['providers']),
                                              device_id=int(params['device_id']),  # type: ignore[arg-type]
                                              cache_dir=str(params['cache_dir']) or None,
                                              resize=str(params['resize']),
                                              # Frames come one at a time: spinning intra-op threads would
                                              # only take CPU from publishing (GPU runs barely use them).
                                              allow_spinning=False)
        except EngineError:
            engine_log.removeHandler(self._log_handler)
            raise
        self._model = model
        self._lut = palette_lut(self._engine.metadata.palette)
        self._class_info = String(data=class_info_json(self._engine.metadata))
        self._last_log: dict[tuple[str, str], float] = {}

        compressed = params['input_transport'] == 'compressed'
        names = list(params['cameras']) or ['']  # type: ignore[call-overload]
        self._cameras = {name: self._create_camera(name, compressed, str(params['input_qos'])) for name in names}
        self._slots: LatestFrameSlots[_Frame] = LatestFrameSlots(names)
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._serve, name='rtformer_worker', daemon=True)
        self._worker.start()  # last: from here on destroy_node has everything to take down
        self.get_logger().info(
            f'{model} on {self._engine.provider} ({self._engine.input_size[0]}x{self._engine.input_size[1]}, '
            f'network {self._engine.metadata.net_size[0]}x{self._engine.metadata.net_size[1]}, '
            f'{self._engine.metadata.num_classes} classes); listening on '
            f'{", ".join(self.resolve_topic_name(cam.input_topic) for cam in self._cameras.values())}')

    def _create_camera(self, name: str, compressed: bool, input_qos: str) -> _Camera:
        prefix = f'{name}/' if name else ''
        out = f'{prefix}segmentation/'
        camera = _Camera(
            name=name,
            input_topic=f'{prefix}image/compressed' if compressed else f'{prefix}image',
            labels=self.create_publisher(Image, out + 'labels', OUTPUT_QOS),
            color=self.create_publisher(Image, out + 'color', OUTPUT_QOS),
            overlay=self.create_publisher(Image, out + 'overlay', OUTPUT_QOS),
            confidence=self.create_publisher(Image, out + 'confidence', OUTPUT_QOS)
            if self._engine.has_confidence else None,
            camera_info=self.create_publisher(CameraInfo, out + 'camera_info', OUTPUT_QOS),
            class_info=self.create_publisher(String, out + 'class_info', LATCHED_QOS),
            stats=CameraStats(f'{self.get_name()}: {name or "image"}'),
        )
        camera.class_info.publish(self._class_info)
        self.create_subscription(
            CompressedImage if compressed else Image, camera.input_topic,
            lambda msg: self._on_image(camera, msg), input_profile(input_qos),
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.create_subscription(CameraInfo, f'{prefix}camera_info', lambda msg: self._on_camera_info(camera, msg),
                                 input_profile(input_qos, CAMERA_INFO_DEPTH))
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
        camera.stats.count('received')
        try:
            if isinstance(msg, Image):
                check_image(msg, int(self._live['max_pixels']))
            else:
                check_compressed(msg)
        except CodecError as err:
            self._drop(camera, str(err))
            return
        if self._slots.put(camera.name, _Frame(msg, time.monotonic_ns())) is not None:
            camera.stats.count('dropped_stale')

    def _on_camera_info(self, camera: _Camera, msg: CameraInfo) -> None:
        with camera.infos_lock:
            camera.infos.append(msg)

    def _publish_diagnostics(self) -> None:
        extra = [('provider', self._engine.provider), ('model', str(self._model)),
                 ('resize', str(self._live['resize']))]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for camera in self._cameras.values():
            topic = ('input_topic', self.resolve_topic_name(camera.input_topic))
            array.status.append(camera.stats.report(self._engine.provider, [topic, *extra]))
        self._diagnostics.publish(array)

    def _drop(self, camera: _Camera, reason: str) -> None:
        """Count a malformed frame and log it, at most once per topic and reason per throttle period."""
        camera.stats.count('dropped_malformed')
        key = (camera.input_topic, reason)
        now = time.monotonic()
        if now - self._last_log.get(key, -_LOG_THROTTLE_S) >= _LOG_THROTTLE_S:
            if len(self._last_log) > 256:  # reasons carry sizes; keep the table bounded
                self._last_log.clear()
            self._last_log[key] = now
            self.get_logger().warning(f'{self.resolve_topic_name(camera.input_topic)}: dropped frame: {reason}')

    # --- worker thread ---------------------------------------------------------------------------------------

    def _serve(self) -> None:
        while (job := self._slots.take()) is not None:
            camera = self._cameras[job[0]]
            try:
                self._serve_frame(camera, job[1])
            except CodecError as err:
                self._drop(camera, str(err))
            except Exception as err:  # no message may kill the worker; count, log, go on
                camera.stats.count('failed')
                self.get_logger().error(f'{self.resolve_topic_name(camera.input_topic)}: frame failed: {err}',
                                        throttle_duration_sec=_LOG_THROTTLE_S)

    def _serve_frame(self, camera: _Camera, frame: _Frame) -> None:
        start = time.monotonic_ns()
        max_pixels = int(self._live['max_pixels'])
        msg = frame.msg
        decoded = (decode_image(msg, max_pixels) if isinstance(msg, Image)
                   else decode_compressed(msg, max_pixels))
        decoded_at = time.monotonic_ns()
        want_confidence = (camera.confidence is not None and bool(self._live['publish_confidence'])
                           and camera.confidence.get_subscription_count() > 0)
        seg = self._engine.infer(decoded.image, decoded.color_order, str(self._live['resize']),
                                 confidence=want_confidence)
        inferred_at = time.monotonic_ns()
        labels = image_message(msg.header, seg.labels, 'mono8')
        encoded_at = time.monotonic_ns()
        camera.labels.publish(labels)
        published_at = time.monotonic_ns()
        self._publish_extras(camera, msg.header, decoded.rgb, seg.labels, seg.confidence)
        done_at = time.monotonic_ns()
        camera.stats.count('served')
        camera.stats.record({
            'latency': (published_at - frame.received_ns) / 1e6, 'wait': (start - frame.received_ns) / 1e6,
            'decode': (decoded_at - start) / 1e6, 'infer': (inferred_at - decoded_at) / 1e6,
            'encode': (encoded_at - inferred_at) / 1e6, 'publish': (published_at - encoded_at) / 1e6,
            'extras': (done_at - published_at) / 1e6})

    def _publish_extras(self, camera: _Camera, header: Header, rgb: Callable[[], np.ndarray], labels: np.ndarray,
                        confidence: np.ndarray | None) -> None:
        """Colour, overlay and confidence only for topics someone subscribes to; camera_info when known."""
        want_color = camera.color.get_subscription_count() > 0
        want_overlay = camera.overlay.get_subscription_count() > 0
        if want_color or want_overlay:
            color = colorize(labels, self._lut)
            if want_color:
                camera.color.publish(image_message(header, color, 'rgb8'))
                camera.stats.count('published_color')
            if want_overlay:
                overlay = blend(rgb(), color, float(self._live['overlay_alpha']))
                camera.overlay.publish(image_message(header, overlay, 'rgb8'))
                camera.stats.count('published_overlay')
        if confidence is not None and camera.confidence is not None:
            camera.confidence.publish(image_message(header, confidence, '32FC1'))
            camera.stats.count('published_confidence')
        info = self._camera_info_for(camera, header)
        if info is not None:
            camera.camera_info.publish(info)
            camera.stats.count('published_camera_info')

    @staticmethod
    def _camera_info_for(camera: _Camera, header: Header) -> CameraInfo | None:
        """The camera_info with the image's stamp, else the latest one, carrying the image's header."""
        with camera.infos_lock:
            if not camera.infos:
                return None
            match = next((info for info in reversed(camera.infos) if info.header.stamp == header.stamp),
                         camera.infos[-1])
        info = copy.copy(match)  # shallow: the cached message keeps its own header for later matching
        info.header = header
        return info

    def destroy_node(self) -> None:
        """Stop the worker (it finishes the frame in hand), release the engine, then the ROS entities."""
        if self._worker is not None:
            self._slots.close()
            self._worker.join(timeout=10.0)
            self._engine.close()
            logging.getLogger('rtformer_ros').removeHandler(self._log_handler)
            self._worker = None
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or shutdown; a bad model or parameter is one line on stderr and exit 1."""
    # Not `with rclpy.init(...)`: init returns a context manager only from rclpy 7.2 (Kilted), not on Jazzy.
    rclpy.init(args=args)
    try:
        node = SegmentationNode()
        try:
            rclpy.spin(node)
        finally:
            node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (EngineError, NodeError, ParamError) as err:
        print(f'{NODE_NAME}: {err}', file=sys.stderr)
        return 1
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
