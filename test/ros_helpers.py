"""Test helpers shared by the codec and node tests: flat-colour frames the tiny model segments exactly, a
reference encoder that writes an RGB frame in any ROS encoding as a sensor_msgs/Image, decompression bombs, and
the tests' probe (the node's client plus its parameter and lifecycle services)."""

from __future__ import annotations

import array
import struct
import threading
import zlib
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from rtformer_ros.ros.client import ClientError, StampedClient

# The tiny model's classes: red -> 0, green -> 1, blue -> 2, dark -> 3.
QUADRANT_COLOURS = ((230, 20, 20), (20, 230, 20), (20, 20, 230), (10, 10, 10))


def quadrants(height: int, width: int) -> np.ndarray:
    """Four flat RGB blocks (red, green / blue, dark). Use sizes divisible by 4 so chroma subsampling and
    Bayer 2x2 cells never straddle a block border."""
    image = np.empty((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    for index, (rows, cols) in enumerate([(slice(0, h2), slice(0, w2)), (slice(0, h2), slice(w2, None)),
                                          (slice(h2, None), slice(0, w2)), (slice(h2, None), slice(w2, None))]):
        image[rows, cols] = QUADRANT_COLOURS[index]
    return image


def interior(image: np.ndarray, margin: int = 2) -> np.ndarray:
    """The four blocks without ``margin`` pixels at their borders (demosaicing and resizing mix neighbours)."""
    h, w = image.shape[:2]
    rows = np.r_[margin:h // 2 - margin, h // 2 + margin:h - margin]
    cols = np.r_[margin:w // 2 - margin, w // 2 + margin:w - margin]
    return image[np.ix_(rows, cols)]


def quadrant_labels(height: int, width: int) -> np.ndarray:
    """The class ids the tiny model gives ``quadrants(height, width)``."""
    labels = np.empty((height, width), np.uint8)
    labels[:height // 2, :width // 2] = 0
    labels[:height // 2, width // 2:] = 1
    labels[height // 2:, :width // 2] = 2
    labels[height // 2:, width // 2:] = 3
    return labels


_BAYER = {'rggb': 'RGGB', 'bggr': 'BGGR', 'gbrg': 'GBRG', 'grbg': 'GRBG'}


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample one channel per pixel in the 2x2 ``pattern`` (e.g. 'RGGB': R at (0, 0), B at (1, 1))."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for index, letter in enumerate(pattern):
        dy, dx = divmod(index, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, 'RGB'.index(letter)]
    return out


def _i420_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y (H, W), U and V (H/2, W/2) in OpenCV's video-range BT.601, the matrix its YUV decoders invert."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    size = h * w
    return (i420[:size].reshape(h, w), i420[size:size * 5 // 4].reshape(h // 2, w // 2),
            i420[size * 5 // 4:].reshape(h // 2, w // 2))


def _yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """Packed 4:2:2 (``order`` 'UYVY' or 'YUYV'): each pixel pair shares one U and V."""
    y, u, v = _i420_planes(rgb)
    u, v = np.repeat(u, 2, axis=0), np.repeat(v, 2, axis=0)  # 4:2:0 -> 4:2:2: same chroma on both rows
    planes = {'Y0': y[:, 0::2], 'Y1': y[:, 1::2], 'U': u, 'V': v}
    names = ['U', 'Y0', 'V', 'Y1'] if order == 'UYVY' else ['Y0', 'U', 'Y1', 'V']
    packed = np.stack([planes[name] for name in names], axis=2)
    return packed.reshape(rgb.shape[0], rgb.shape[1], 2)


def _yuv420sp(rgb: np.ndarray, uv_order: str) -> np.ndarray:
    """NV12 ('UV') / NV21 ('VU'): Y plane, then interleaved half-resolution chroma; (H * 3/2, W)."""
    y, u, v = _i420_planes(rgb)
    chroma = np.stack([u, v] if uv_order == 'UV' else [v, u], axis=2).reshape(u.shape[0], -1)
    return np.concatenate([y, chroma])


def _wide(a: np.ndarray) -> np.ndarray:
    return a.astype(np.uint16) * 257


def encode_pixels(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference encoder (test side only): buffer content of ``rgb`` in ``encoding``, and the RGB image a
    correct decoder gives back (mono: the gray value in every channel)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.full(rgb.shape[:2] + (1,), 77, np.uint8)
    base = encoding.removesuffix('16').removesuffix('8')
    expected = np.repeat(gray[:, :, None], 3, axis=2) if base == 'mono' else rgb
    if encoding.startswith('bayer_'):
        mosaic = _mosaic(rgb, _BAYER[base[6:]])
        return (_wide(mosaic) if encoding.endswith('16') else mosaic), expected
    table = {
        'rgb': lambda: rgb, 'bgr': lambda: rgb[:, :, ::-1], 'rgba': lambda: np.dstack([rgb, alpha]),
        'bgra': lambda: np.dstack([rgb[:, :, ::-1], alpha]), 'mono': lambda: gray,
        'uyvy': lambda: _yuv422(rgb, 'UYVY'), 'yuv422': lambda: _yuv422(rgb, 'UYVY'),
        'yuyv': lambda: _yuv422(rgb, 'YUYV'), 'yuv422_yuy2': lambda: _yuv422(rgb, 'YUYV'),
        'nv12': lambda: _yuv420sp(rgb, 'UV'), 'nv21': lambda: _yuv420sp(rgb, 'VU'),
        '8UC3': lambda: rgb, '16UC3': lambda: _wide(rgb),
    }
    data = table[encoding if encoding in table else base]()
    if encoding.endswith('16') and encoding not in table:
        data = _wide(data)
    return data, expected


def frame_message(rgb: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """``rgb`` as a sensor_msgs/Image in ``encoding``, rows padded by ``pad`` bytes of 255."""
    data, _ = encode_pixels(rgb, encoding)
    rows = data.shape[0]
    if bigendian:
        data = data.astype(data.dtype.newbyteorder('>'))
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(rows, -1)
    if pad:  # row padding filled with a value that would show up if it leaked into the image
        raw = np.concatenate([raw, np.full((rows, pad), 255, np.uint8)], axis=1)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=int(bigendian),
                step=raw.shape[1])
    msg.data = array.array('B', raw.tobytes())
    return msg


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of ``width`` x ``height`` zeros: ~1 KB per 1000x1000, made row by row so
    building it never holds the image (20000x20000: 389 KB, 400 MB decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    rows = bytes((width + 1) * 64)  # 64 rows: filter byte 0, then zeros
    idat = [compressor.compress(rows) for _ in range(height // 64)]
    idat.append(compressor.compress(bytes((width + 1) * (height % 64))))
    idat.append(compressor.flush())
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', b''.join(idat)) + chunk(b'IEND', b'')


def jpeg_bomb(width: int, height: int) -> bytes:
    """A 16x16 JPEG whose frame header (SOF0) says ``width`` x ``height`` (at most 65535): libjpeg decodes it
    to the full declared size, filling the missing data (20000x20000: 631 bytes, 1.2 GB decoded as BGR)."""
    ok, encoded = cv2.imencode('.jpg', np.zeros((16, 16, 3), np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
    return bytes(data)


class Probe(StampedClient):
    """The tests' client of the node (conftest's ``probe`` fixture): ``StampedClient`` plus service calls."""

    def call(self, srv_type: Any, service: str, request: Any, timeout: float = 10.0) -> Any:
        """Call ``service`` once and return its response.

        Raises:
            ClientError: the service is not there or does not answer within ``timeout`` seconds.
        """
        client = self.node.create_client(srv_type, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                msg = f'service {service} not available after {timeout} s'
                raise ClientError(msg)
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                msg = f'service {service} did not answer within {timeout} s'
                raise ClientError(msg)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node: str, values: dict[str, object], timeout: float = 10.0) -> list[SetParametersResult]:
        """Set parameters of ``node`` (fully qualified name) through its SetParameters service."""
        request = SetParameters.Request(
            parameters=[ParameterMsg(name=k, value=Parameter(k, value=v).get_parameter_value())
                        for k, v in values.items()])
        return list(self.call(SetParameters, f'{node}/set_parameters', request, timeout).results)

    def get_parameters(self, node: str, names: Sequence[str], timeout: float = 10.0) -> dict[str, Any]:
        """Current values of parameters ``names`` of ``node``, as Python values."""
        response = self.call(GetParameters, f'{node}/get_parameters', GetParameters.Request(names=list(names)),
                             timeout)
        return {name: Parameter.from_parameter_msg(ParameterMsg(name=name, value=value)).value
                for name, value in zip(names, response.values, strict=True)}

    def list_parameters(self, node: str, timeout: float = 10.0) -> list[str]:
        """Names of every parameter ``node`` declared."""
        return list(self.call(ListParameters, f'{node}/list_parameters', ListParameters.Request(),
                               timeout).result.names)
