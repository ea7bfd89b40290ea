"""sensor_msgs <-> numpy for the node and the bag tools: validate, decode, build outputs without Python loops.

Decoding goes through rosbags-image (``message_to_cvimage``), which knows every ROS encoding (8/16-bit RGB,
BGR, alpha, mono, Bayer, YUV 4:2:2, NV12/NV21) and JPEG/PNG. It ignores ``step`` and trusts the sizes, so this
module checks the message first and hands it a compact, correctly sized buffer: a zero-copy view when rows are
not padded, one copy of the pixel bytes when they are.

Messages are read by their fields only: rclpy's messages (``data`` an ``array.array``) and rosbags' deserialised
ones (``data`` a numpy array) serve alike. ROS packages are imported only where a message is built
(``image_message``), so the bag tools decode without a ROS install. ``max_pixels`` is the largest width x height
a check or decoder accepts (None: no limit). Every size is checked before anything is allocated: a raw image's
width, height, step and data length, a compressed image's PNG IHDR or JPEG SOF header, so no message can make a
decoder allocate more than one frame of ``max_pixels``.

Layout conventions: ``height``/``width`` are the image's size in pixels; ``step`` is the byte length of one
buffer row. NV12/NV21 carry ``height * 3 / 2`` rows of ``step`` bytes (Y plane, then interleaved chroma), as
GStreamer and camera drivers lay them out; YUV 4:2:2 has 2 bytes per pixel.

Outputs are built with ``array.array('B').frombytes(ndarray)``: one memcpy. Assigning a numpy array to
``msg.data`` walks it element by element in Python (~300 ms for 6 MB).
"""

from __future__ import annotations

import array
import sys
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
from rosbags.image import ImageError, message_to_cvimage
from rosbags.image.image import ENCODINGMAP, Format, to_cvtype

from rtformer_ros.errors import RtformerError, first_line

if TYPE_CHECKING:
    from rosbags.typesys.stores.ros2_humble import sensor_msgs__msg__CompressedImage as BagCompressedImage
    from rosbags.typesys.stores.ros2_humble import sensor_msgs__msg__Image as BagImage
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    AnyImage = Image | BagImage
    AnyCompressedImage = CompressedImage | BagCompressedImage

__all__ = ['JPEG_FORMAT', 'SUPPORTED_ENCODINGS', 'CodecError', 'Decoded', 'check_compressed', 'check_image',
           'compressed_size', 'decode_camera', 'decode_compressed', 'decode_image', 'decode_labels', 'image_message',
           'jpeg_message']

# Generic OpenCV-style encodings rosbags-image can turn into RGB: only 3-channel ones (passed through as RGB).
_GENERIC_RGB = ('8UC3', '16UC3')
SUPPORTED_ENCODINGS: tuple[str, ...] = (*ENCODINGMAP, *_GENERIC_RGB)
"""Raw ``sensor_msgs/Image`` encodings the node accepts."""

_LABEL_ENCODINGS = ('mono8', '8UC1')  # class ids, one byte per pixel
_HOST_BIGENDIAN = int(sys.byteorder == 'big')
_HIGH_BYTE = 1 - _HOST_BIGENDIAN  # index of a native uint16's most significant byte
_YUV420 = frozenset({Format.YUV_NV12, Format.YUV_NV21})
_YUV422 = frozenset({Format.YUV_UYVY, Format.YUV_YUYV})
_BY_CHANNELS = {1: 'mono8', 3: 'bgr8', 4: 'bgra8'}  # what cv2.imdecode returns, as a ROS encoding
_COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG frame header markers (baseline, extended, progressive, lossless; Huffman or arithmetic): not C4 (DHT),
# C8 (reserved) or CC (DAC).
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_MAX_SEGMENTS = 1024


class CodecError(RtformerError, ValueError):
    """A message cannot be turned into an image; the text says why (the caller adds the topic)."""


class Decoded(NamedTuple):
    """A frame ready for the engine."""

    image: np.ndarray  # (H, W, 3) uint8
    color_order: str  # 'rgb' or 'bgr': what the channels hold

    def rgb(self) -> np.ndarray:
        """The frame in RGB order (a copy only when it is BGR)."""
        return self.image if self.color_order == 'rgb' else np.ascontiguousarray(self.image[:, :, ::-1])

    def bgr(self) -> np.ndarray:
        """The frame in BGR order, as OpenCV writes it (a copy only when it is RGB)."""
        return self.image if self.color_order == 'bgr' else np.ascontiguousarray(self.image[:, :, ::-1])


class _Layout(NamedTuple):
    rows: int  # buffer rows (NV12/NV21: 3/2 of the height)
    row_bytes: int  # pixel bytes in one row, without padding
    wide: bool  # 16 bits per channel


class _Raw(NamedTuple):
    """The attributes of sensor_msgs/Image that rosbags-image reads, over a compact buffer."""

    encoding: str
    height: int  # buffer rows
    width: int
    is_bigendian: int
    data: np.ndarray | array.array


def _layout(msg: AnyImage) -> _Layout:
    try:
        depth, fmt, typestr, channels = to_cvtype(msg.encoding)
    except ImageError:
        msg_ = f'unknown encoding {msg.encoding!r}'
        raise CodecError(msg_) from None
    if fmt == Format.GENERIC and msg.encoding not in _GENERIC_RGB:
        msg_ = f'encoding {msg.encoding!r} has no colour conversion (use one of {", ".join(SUPPORTED_ENCODINGS)})'
        raise CodecError(msg_)
    height, width = msg.height, msg.width
    if (fmt in _YUV420 and (height % 2 or width % 2)) or (fmt in _YUV422 and width % 2):
        msg_ = f'{msg.encoding} needs an even size, got {width}x{height}'
        raise CodecError(msg_)
    rows = height * 3 // 2 if fmt in _YUV420 else height
    return _Layout(rows, width * channels * np.dtype(typestr).itemsize, depth == 16)


def _check_size(width: int, height: int, max_pixels: int | None) -> None:
    pixels = width * height
    if pixels == 0:
        msg = f'zero size {width}x{height}'
        raise CodecError(msg)
    if max_pixels is not None and pixels > max_pixels:
        msg = f'{width}x{height} = {pixels} pixels is more than max_pixels={max_pixels}'
        raise CodecError(msg)


def _check_buffer(msg: AnyImage, layout: _Layout, max_pixels: int | None) -> None:
    _check_size(msg.width, msg.height, max_pixels)
    if msg.step < layout.row_bytes:
        msg_ = f'step {msg.step} is smaller than width {msg.width} x {layout.row_bytes // msg.width} bytes per pixel'
        raise CodecError(msg_)
    needed = msg.step * layout.rows
    if len(msg.data) < needed:
        msg_ = f'data has {len(msg.data)} bytes, step {msg.step} x {layout.rows} rows needs {needed}'
        raise CodecError(msg_)


def _pixel_rows(msg: AnyImage, layout: _Layout, max_pixels: int | None) -> np.ndarray:
    """The checked buffer as a (rows, row_bytes) uint8 view, row padding cut off (not contiguous if padded)."""
    _check_buffer(msg, layout, max_pixels)
    buffer = np.frombuffer(msg.data, np.uint8, count=msg.step * layout.rows)
    return buffer.reshape(layout.rows, msg.step)[:, :layout.row_bytes]


def check_image(msg: AnyImage, max_pixels: int | None = None) -> None:
    """Check a raw image's header against its buffer without touching the pixels.

    Raises:
        CodecError: zero size, unknown encoding, step too small, data too short, or too many pixels.
    """
    _check_buffer(msg, _layout(msg), max_pixels)


def decode_image(msg: AnyImage, max_pixels: int | None = None) -> Decoded:
    """Decode a raw ``sensor_msgs/Image`` of any supported encoding to 3-channel uint8 RGB or BGR.

    BGR-family encodings stay BGR (the engine takes either order, so no swap is spent on them); 16-bit
    images keep their high byte, mono is replicated, alpha dropped, Bayer demosaiced, YUV converted.

    Raises:
        CodecError: the message fails ``check_image`` or rosbags-image cannot convert it.
    """
    layout = _layout(msg)
    buffer = np.ascontiguousarray(_pixel_rows(msg, layout, max_pixels)).reshape(-1)  # a copy only if padded
    # Byte order only matters for 16-bit data; 8-bit buffers are read as they are.
    bigendian = msg.is_bigendian if layout.wide else _HOST_BIGENDIAN
    return _to_engine(_Raw(msg.encoding, layout.rows, msg.width, bigendian, buffer))


def decode_labels(msg: AnyImage, max_pixels: int | None = None) -> np.ndarray:
    """A mono8 (or 8UC1) ``sensor_msgs/Image`` of class ids as an (H, W) uint8 view of its buffer.

    Raises:
        CodecError: another encoding, zero size, step too small, data too short, or too many pixels.
    """
    if msg.encoding not in _LABEL_ENCODINGS:
        msg_ = f'label image is {msg.encoding}, expected mono8 class ids'
        raise CodecError(msg_)
    return _pixel_rows(msg, _Layout(msg.height, msg.width, wide=False), max_pixels)


def _to_engine(raw: _Raw) -> Decoded:
    target = 'bgr8' if raw.encoding.startswith('bgr') else 'rgb8'
    try:
        if raw.encoding.endswith('16') or raw.encoding.startswith('16U'):
            raw = _narrow(raw)
        image = message_to_cvimage(raw, target)
    except (ImageError, cv2.error, ValueError, TypeError) as err:
        msg = f'cannot convert {raw.encoding} to {target}: {first_line(err)}'
        raise CodecError(msg) from None
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        msg = f'{raw.encoding} converted to {image.dtype} {image.shape}, not 3-channel uint8'
        raise CodecError(msg)
    return Decoded(image, target[:3])


def _narrow(raw: _Raw) -> _Raw:
    """16 -> 8 bits by keeping each value's high byte: one strided copy, no float maths."""
    wide = message_to_cvimage(raw)  # native-order uint16, byte-swapped by rosbags-image if needed
    narrow = np.ascontiguousarray(wide.view(np.uint8)[..., _HIGH_BYTE::2])
    encoding = raw.encoding[:-2] + '8' if raw.encoding.endswith('16') else raw.encoding.replace('16U', '8U', 1)
    return _Raw(encoding, raw.height, raw.width, _HOST_BIGENDIAN, narrow)


def compressed_size(data: object) -> tuple[str, int, int]:
    """Kind ('png' or 'jpeg'), width and height of compressed image data, read from its header.

    Only the PNG IHDR chunk or the JPEG markers up to the first frame header (SOF) are read, so a
    decompression bomb (a small file declaring a huge image) is caught before any pixel is decoded.

    Raises:
        CodecError: the data is neither PNG nor JPEG, or its header is cut short or corrupt.
    """
    view = memoryview(data).cast('B')  # type: ignore[arg-type]  # array.array, bytes or numpy, no copy
    if view[:8] == _PNG_SIGNATURE:
        if len(view) < 24 or view[12:16] != b'IHDR':
            msg = 'PNG data has no IHDR header'
            raise CodecError(msg)
        return 'png', int.from_bytes(view[16:20], 'big'), int.from_bytes(view[20:24], 'big')
    if view[:2] == b'\xff\xd8':
        return ('jpeg', *_jpeg_size(view))
    msg = f'data is neither JPEG nor PNG (starts with {bytes(view[:8]).hex(" ")})'
    raise CodecError(msg)


def _jpeg_size(view: memoryview) -> tuple[int, int]:
    """Width and height from the first SOF segment, walking the segments after SOI."""
    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):  # real files have a dozen before SOF; bounds the walk on junk
        if pos + 4 > len(view):
            break
        if view[pos] != 0xFF:
            msg = f'JPEG data is corrupt: no marker at byte {pos}'
            raise CodecError(msg)
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length field
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            break
        if marker in _JPEG_SOF:
            if pos + 9 > len(view):
                break
            height = int.from_bytes(view[pos + 5:pos + 7], 'big')
            width = int.from_bytes(view[pos + 7:pos + 9], 'big')
            return width, height
        pos += 2 + int.from_bytes(view[pos + 2:pos + 4], 'big')
    msg = 'JPEG data has no frame header (SOF) before its image data'
    raise CodecError(msg)


def check_compressed(msg: AnyCompressedImage, max_pixels: int | None = None) -> None:
    """Check a ``sensor_msgs/CompressedImage`` (rclpy or rosbags) from its header, without decoding pixels.

    Raises:
        CodecError: empty data, a format other than JPEG/PNG (compressedDepth included), a corrupt header,
            or a declared size of zero or more than ``max_pixels`` pixels.
    """
    fmt = msg.format.lower()
    if len(msg.data) == 0:  # not `not msg.data`: rosbags' data is a numpy array
        msg_ = 'empty compressed data'
        raise CodecError(msg_)
    if 'compresseddepth' in fmt or (fmt and not any(name in fmt for name in _COMPRESSED_FORMATS)):
        msg_ = f'unsupported compressed format {msg.format!r} (jpeg or png expected)'
        raise CodecError(msg_)
    kind, width, height = compressed_size(msg.data)
    try:
        _check_size(width, height, max_pixels)
    except CodecError as err:
        msg_ = f'{kind} header declares {err}'
        raise CodecError(msg_) from None


def decode_compressed(msg: AnyCompressedImage, max_pixels: int | None = None) -> Decoded:
    """Decode a JPEG/PNG ``sensor_msgs/CompressedImage`` to 3-channel uint8 (BGR as OpenCV decodes it).

    The size is checked from the header first (``check_compressed``): a frame over ``max_pixels`` is
    rejected before the decoder allocates anything.

    Raises:
        CodecError: the message fails ``check_compressed``, or the data does not decode.
    """
    check_compressed(msg, max_pixels)
    try:
        image = message_to_cvimage(msg)
    except AssertionError:  # rosbags-image asserts on a failed cv2.imdecode
        image = None
    except cv2.error as err:
        msg_ = f'cannot decode {msg.format or "compressed"} data: {first_line(err)}'
        raise CodecError(msg_) from None
    if image is None:
        msg_ = f'cannot decode {len(msg.data)} bytes of {msg.format or "compressed"} data'
        raise CodecError(msg_)
    height, width = image.shape[:2]
    _check_size(width, height, max_pixels)  # the decoder's own view of the size, in case it differs
    channels = 1 if image.ndim == 2 else image.shape[2]
    encoding = _BY_CHANNELS.get(channels)
    if encoding is None:
        msg_ = f'decoded image has {channels} channels'
        raise CodecError(msg_)
    if image.dtype == np.uint16:  # 16-bit PNG
        encoding = encoding[:-1] + '16'
    return _to_engine(_Raw(encoding, height, width, _HOST_BIGENDIAN, np.ascontiguousarray(image)))


def decode_camera(msg: AnyImage | AnyCompressedImage, max_pixels: int | None = None) -> Decoded:
    """A camera message of either kind (a CompressedImage has a ``format``): `decode_compressed` or `decode_image`."""
    return decode_compressed(msg, max_pixels) if hasattr(msg, 'format') else decode_image(msg, max_pixels)


def image_message(header: Header, pixels: np.ndarray, encoding: str) -> Image:
    """An rclpy ``sensor_msgs/Image`` holding ``pixels`` (H, W[, C]), built with one memcpy.

    Args:
        header: copied by reference (stamp and frame_id of the input frame).
        pixels: uint8 or float32 array; made contiguous if it is not.
        encoding: ROS encoding matching ``pixels`` ('mono8', 'rgb8', '32FC1').
    """
    from sensor_msgs.msg import Image  # here only: decoding must work without ROS (bag tools)

    pixels = np.ascontiguousarray(pixels)
    data = array.array('B')
    data.frombytes(pixels.data.cast('B'))
    msg = Image()
    msg.header = header
    msg.height, msg.width = pixels.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = _HOST_BIGENDIAN
    msg.step = pixels.strides[0]
    msg.data = data  # array.array('B'): stored as is, no per-element check
    return msg


JPEG_FORMAT = 'rgb8; jpeg compressed bgr8'
"""``format`` of the JPEGs the node publishes, as image_transport's compressed plugin writes it for rgb8 images."""


def jpeg_message(header: Header, rgb: np.ndarray, quality: int) -> CompressedImage:
    """An rclpy ``sensor_msgs/CompressedImage`` holding ``rgb`` (H, W, 3 uint8) as a JPEG of ``quality`` (1-100)."""
    from sensor_msgs.msg import CompressedImage  # here only, as in image_message

    ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        msg_ = f'JPEG encoding of a {rgb.shape} image failed'
        raise CodecError(msg_)
    data = array.array('B')
    data.frombytes(encoded.data)
    msg = CompressedImage()
    msg.header = header
    msg.format = JPEG_FORMAT
    msg.data = data
    return msg
