"""The node's parameters as one table: declared from it, validated by it, documented and tested against it.

``read_only`` parameters need a restart (they shape the session, subscriptions or QoS); the others apply to the
next frame.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException, ParameterException
from rclpy.parameter import Parameter

from rtformer_ros.errors import RtformerError
from rtformer_ros.models import PROVIDER_CHOICES, default_model

if TYPE_CHECKING:
    from rclpy.node import Node

__all__ = ['DEFAULT_MODEL', 'PARAMETERS', 'ParamError', 'ParamSpec', 'check_value', 'declare_parameters']

DEFAULT_MODEL = default_model()  # INT8 on a CPU with OpenVINO, else fp32 (rtformer_ros.models)

Value = str | int | float | bool | list[str]

# A camera name becomes a topic prefix: ROS name tokens joined by '/', no leading '/' or '~'.
_CAMERA_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*')


class ParamError(RtformerError, ValueError):
    """A parameter override given at start is invalid; the message names the parameter and the reason."""


class ParamSpec(NamedTuple):
    """One declared parameter."""

    name: str
    default: Value
    description: str
    read_only: bool = True
    choices: tuple[str, ...] = ()
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec('model', DEFAULT_MODEL,
              'Exported RTFormer .onnx: a path, or a file name in the package share models/ folder '
              '(ament index) or the source tree models/. Empty: none (variant:=base needs model:=...).'),
    ParamSpec('providers', 'auto',
              'Inference provider: auto tries TensorRT, CUDA, then on a CPU OpenVINO for INT8 files and ONNX Runtime '
              'otherwise; openvino (bf16 where the CPU has it), openvino-fp32, openvino-bf16 and cpu (ONNX Runtime) '
              'force one.',
              choices=PROVIDER_CHOICES),
    ParamSpec('device_id', 0, 'GPU index for the CUDA/TensorRT providers.', int_range=(0, 64)),
    ParamSpec('cache_dir', '', 'TensorRT engine cache folder; empty: ~/.cache/rtformer_ros/tensorrt.'),
    ParamSpec('resize', 'stretch',
              'How frames are fitted to the model size: stretch (ignore aspect) or letterbox (pad); '
              'outputs are always at the input resolution.',
              read_only=False, choices=('stretch', 'letterbox')),
    ParamSpec('overlay_alpha', 0.5, 'Weight of the colour mask in segmentation/overlay (0: image only).',
              read_only=False, float_range=(0.0, 1.0)),
    ParamSpec('publish_confidence', True,
              'Publish segmentation/confidence (32FC1, max softmax probability) when the model has it.',
              read_only=False),
    ParamSpec('input_transport', 'raw', 'raw: subscribe image (sensor_msgs/Image); '
              'compressed: image/compressed (sensor_msgs/CompressedImage, jpeg/png).',
              choices=('raw', 'compressed')),
    ParamSpec('input_qos', 'sensor_data',
              'Image subscription reliability: sensor_data (best effort, depth 1) or reliable (depth 1).',
              choices=('sensor_data', 'reliable')),
    ParamSpec('cameras', [], 'Camera names: <cam>/image in, <cam>/segmentation/* out, one shared engine. '
              'Empty: a single camera on the plain topics.'),
    ParamSpec('max_pixels', 4096 * 4096, 'Frames with more pixels are dropped as malformed (compressed frames '
              'by the size in their header, before decoding).',
              read_only=False, int_range=(1, 1 << 28)),
    ParamSpec('enabled', True, 'Serve frames; false pauses the node at runtime (frames are counted as skipped).',
              read_only=False),
    ParamSpec('jpeg_quality', 80, 'JPEG quality of segmentation/color/compressed and segmentation/overlay/compressed.',
              read_only=False, int_range=(1, 100)),
    ParamSpec('stale_after', 3.0, 'Diagnostics WARN when no frame arrived for this many seconds.',
              read_only=False, float_range=(0.1, 3600.0)),
    ParamSpec('max_stamp_lag', 1.0, 'Diagnostics WARN when frame header stamps differ from the node clock by more '
              'than this many seconds (catches use_sim_time mistakes); 0: off.',
              read_only=False, float_range=(0.0, 1e6)),
    ParamSpec('camera_info_max_age', 1.0, "A camera_info whose stamp is further than this many seconds from the "
              "image's is not forwarded (0: the same stamp only); nor is one of another size.",
              read_only=False, float_range=(0.0, 3600.0)),
    ParamSpec('max_failures', 10, 'Consecutive inference failures that make diagnostics ERROR and trigger on_failure.',
              read_only=False, int_range=(1, 1_000_000)),
    ParamSpec('on_failure', 'exit', 'After max_failures consecutive inference failures: exit (code 2, so a launch '
              'respawn acts) or keep (go on trying, diagnostics ERROR).', read_only=False, choices=('exit', 'keep')),
    ParamSpec('ood_window', 100, 'Frames in the rolling out-of-domain statistics (mean confidence, share of '
              'low-confidence pixels); 0: off. Needs a model with confidence.',
              read_only=False, int_range=(0, 100_000)),
    ParamSpec('ood_threshold', 0.5, 'Confidence under which a pixel counts as low for ood_max_low_share.',
              read_only=False, float_range=(0.0, 1.0)),
    ParamSpec('ood_min_confidence', 0.0, 'Diagnostics WARN when the rolling mean confidence is below this '
              '(0: off).', read_only=False, float_range=(0.0, 1.0)),
    ParamSpec('ood_max_low_share', 1.0, 'Diagnostics WARN when the rolling share of pixels under ood_threshold is '
              'above this (1: off).', read_only=False, float_range=(0.0, 1.0)),
)
"""Every parameter the node declares (besides ROS's own use_sim_time and QoS overrides)."""

_BY_NAME = {spec.name: spec for spec in PARAMETERS}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """ParameterDescriptor with description, choices, range and read_only for ``spec``."""
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = f'one of: {", ".join(spec.choices)}'
    if spec.float_range is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=spec.float_range[0],
                                                        to_value=spec.float_range[1], step=0.0)]
    if spec.int_range is not None:
        desc.integer_range = [IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)]
    return desc


def check_value(name: str, value: object) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name``, or None if it is.

    Ranges and types are enforced by rclpy from the descriptors; this checks what descriptors cannot say.
    """
    spec = _BY_NAME.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f'{name}={value!r} is not one of {", ".join(spec.choices)}'
    if name == 'cameras':
        names = list(value or [])  # type: ignore[call-overload]
        bad = [cam for cam in names if not _CAMERA_NAME.fullmatch(cam)]
        if bad:
            return f'cameras: {bad[0]!r} is not a relative ROS name (letters, digits, _ and /)'
        if len(set(names)) != len(names):
            return f'cameras={names}: a name repeats'
    return None


def declare_parameters(node: Node) -> dict[str, Value]:
    """Declare every parameter of ``PARAMETERS`` on ``node``; returns the values it starts with.

    Raises:
        ParamError: an override has the wrong type, is out of range or rejected by an on-set callback.
    """
    values: dict[str, Value] = {}
    for spec in PARAMETERS:
        # rclpy infers BYTE_ARRAY from an empty list: declare the type instead (unset means empty).
        default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
        try:
            param = node.declare_parameter(spec.name, default, descriptor(spec))
        except ParameterException as err:
            raise ParamError(f'parameter {spec.name}: {_reason(err)}') from None
        value = param.value if param.value is not None else spec.default
        values[spec.name] = list(value) if isinstance(value, list) else value
    return values


def _reason(err: ParameterException) -> str:
    """The reason inside rclpy's '<what>. Reason: <reason>: <name>' text, or all of it."""
    text = str(err).rsplit(': ', 1)[0]  # rclpy appends ': <parameter name>'
    if isinstance(err, InvalidParameterValueException) and 'Reason: ' in text:
        return text.split('Reason: ', 1)[1]
    return text
