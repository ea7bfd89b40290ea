"""sensor_msgs <-> numpy: every encoding rosbags-image supports decodes to the right colours, bad messages are
rejected with a reason, and outputs are built as array.array('B') with the right step."""

from __future__ import annotations

import array
import sys

import cv2
import numpy as np
import pytest
from ros_helpers import encode_pixels, frame_message, interior, jpeg_bomb, png_bomb, quadrants
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from rtformer_ros.image.codec import (
    JPEG_FORMAT,
    SUPPORTED_ENCODINGS,
    CodecError,
    check_compressed,
    compressed_size,
    decode_compressed,
    decode_image,
    decode_labels,
    image_message,
    jpeg_message,
)
from rtformer_ros.image.render import blend, colorize, palette_lut

MAX_PIXELS = 1 << 24

REFERENCE = quadrants(24, 32)

_YUV = ('uyvy', 'yuv422', 'yuyv', 'yuv422_yuy2', 'nv12', 'nv21')


def tolerance(encoding: str) -> float:
    """Mean absolute error allowed: lossless encodings are exact (16-bit keeps the high byte, x*257 >> 8 == x);
    YUV rounds in its colour matrix; demosaiced block interiors are exact up to rounding."""
    if encoding in _YUV:
        return 3.0
    if encoding.startswith('bayer_'):
        return 1.0
    return 0.0


def _error(decoded: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(interior(decoded).astype(int) - interior(expected)).mean())


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
@pytest.mark.parametrize('pad', [0, 6], ids=['packed', 'padded'])
def test_codec_decodes_every_supported_encoding_to_its_colours(encoding: str, pad: int) -> None:
    _, expected = encode_pixels(REFERENCE, encoding)
    decoded = decode_image(frame_message(REFERENCE, encoding, pad=pad), MAX_PIXELS)
    assert decoded.image.shape == REFERENCE.shape and decoded.image.dtype == np.uint8
    assert decoded.color_order == ('bgr' if encoding.startswith('bgr') else 'rgb')
    error = _error(decoded.rgb(), expected)
    assert error <= tolerance(encoding), f'{encoding}: mean error {error:.2f}'
    np.testing.assert_array_equal(decoded.bgr(), decoded.rgb()[:, :, ::-1])


@pytest.mark.parametrize('encoding', ['rgb16', 'mono16', 'bayer_grbg16', '16UC3'])
def test_codec_honours_big_endian_16_bit_data(encoding: str) -> None:
    _, expected = encode_pixels(REFERENCE, encoding)
    decoded = decode_image(frame_message(REFERENCE, encoding, bigendian=True), MAX_PIXELS)
    assert _error(decoded.rgb(), expected) <= tolerance(encoding)


def test_codec_keeps_bgr_frames_in_bgr_order_without_a_copy() -> None:
    msg = frame_message(REFERENCE, 'bgr8')
    decoded = decode_image(msg, MAX_PIXELS)
    assert decoded.color_order == 'bgr'
    assert np.shares_memory(decoded.image, np.frombuffer(msg.data, np.uint8))  # zero-copy view of msg.data


def _good(**changes: object) -> Image:
    msg = frame_message(REFERENCE, 'rgb8')
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(('msg', 'max_pixels', 'reason'), [
    (_good(data=array.array('B', bytes(100))), MAX_PIXELS, r'data has 100 bytes, step 96 x 24 rows needs 2304'),
    (_good(step=50), MAX_PIXELS, r'step 50 is smaller than width 32 x 3 bytes per pixel'),
    (_good(height=0), MAX_PIXELS, r'zero size 32x0'),
    (_good(width=0, step=0), MAX_PIXELS, r'zero size 0x24'),
    (_good(encoding='rgb9'), MAX_PIXELS, r"unknown encoding 'rgb9'"),
    (_good(encoding='32FC1'), MAX_PIXELS, r"encoding '32FC1' has no colour conversion"),
    (_good(), 700, r'32x24 = 768 pixels is more than max_pixels=700'),
    (Image(height=23, width=32, encoding='nv12', step=32, data=array.array('B', bytes(32 * 36))), MAX_PIXELS,
     r'nv12 needs an even size, got 32x23'),
], ids=['short-data', 'small-step', 'zero-height', 'zero-width', 'unknown-encoding', 'no-colour', 'too-many-pixels',
        'odd-nv12'])
def test_codec_rejects_malformed_images_with_a_reason(msg: Image, max_pixels: int, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        decode_image(msg, max_pixels)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_codec_reads_labels_as_a_view_without_row_padding(encoding: str) -> None:
    ids = np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)
    padded = np.hstack([ids, np.full((24, 5), 255, np.uint8)])
    msg = Image(height=24, width=32, encoding=encoding, step=37, data=array.array('B', padded.tobytes()))
    labels = decode_labels(msg)
    np.testing.assert_array_equal(labels, ids)
    assert np.shares_memory(labels, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize(('msg', 'reason'), [
    (frame_message(REFERENCE, 'rgb8'), r'label image is rgb8, expected mono8'),
    (Image(height=2, width=4, encoding='mono8', step=3, data=array.array('B', bytes(8))), r'step 3 is smaller'),
    (Image(height=2, width=4, encoding='mono8', step=4, data=array.array('B', bytes(7))), r'data has 7 bytes'),
], ids=['colour', 'small-step', 'short-data'])
def test_codec_rejects_bad_label_images_with_a_reason(msg: Image, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        decode_labels(msg)


def _compressed(fmt: str, data: bytes) -> CompressedImage:
    return CompressedImage(format=fmt, data=array.array('B', data))


@pytest.mark.parametrize(('fmt', 'ext', 'max_error'), [('jpeg', '.jpg', 8.0), ('png', '.png', 0.0),
                                                       ('rgb8; jpeg compressed bgr8', '.jpg', 8.0)])
def test_codec_decodes_jpeg_and_png(fmt: str, ext: str, max_error: float) -> None:
    ok, encoded = cv2.imencode(ext, REFERENCE[:, :, ::-1])
    assert ok
    decoded = decode_compressed(_compressed(fmt, encoded.tobytes()), MAX_PIXELS)
    assert decoded.image.shape == REFERENCE.shape
    assert _error(decoded.rgb(), REFERENCE) <= max_error


def test_codec_decodes_grayscale_png_to_three_channels() -> None:
    gray = cv2.cvtColor(REFERENCE, cv2.COLOR_RGB2GRAY)
    ok, encoded = cv2.imencode('.png', gray)
    assert ok
    decoded = decode_compressed(_compressed('png', encoded.tobytes()), MAX_PIXELS)
    assert decoded.image.shape == REFERENCE.shape
    assert np.array_equal(decoded.image[:, :, 0], gray) and np.array_equal(decoded.image[:, :, 2], gray)


def test_codec_decodes_16_bit_png() -> None:
    ok, encoded = cv2.imencode('.png', (REFERENCE[:, :, ::-1].astype(np.uint16) * 257))
    assert ok
    decoded = decode_compressed(_compressed('png', encoded.tobytes()), MAX_PIXELS)
    assert decoded.image.dtype == np.uint8 and np.array_equal(decoded.rgb(), REFERENCE)


def _png_with_broken_data() -> bytes:
    ok, encoded = cv2.imencode('.png', REFERENCE)
    assert ok
    return encoded.tobytes()[:33] + bytes(100)  # signature and IHDR intact, image data zeros


@pytest.mark.parametrize(('msg', 'reason'), [
    (_compressed('png', _png_with_broken_data()), r'cannot decode 133 bytes of png data'),
    (_compressed('jpeg', b'\xff\xd8\xff\xe0 definitely not a jpeg'), r'JPEG data has no frame header \(SOF\)'),
    (_compressed('jpeg', b'\xff\xd8\xff\xe0\x00\x04ab\x00\x00\x00\x00'), r'JPEG data is corrupt: no marker at byte 8'),
    (_compressed('png', b'\x89PNG\r\n\x1a\n\x00\x00'), r'PNG data has no IHDR header'),
    (_compressed('jpeg', b'GIF89a'), r'data is neither JPEG nor PNG \(starts with 47 49 46 38 39 61\)'),
    (_compressed('jpeg', b''), r'empty compressed data'),
    (_compressed('16UC1; compressedDepth png', b'\x89PNG'), r'unsupported compressed format'),
    (_compressed('webp', b'RIFF'), r"unsupported compressed format 'webp'"),
    (_compressed('png', png_bomb(0, 5)), r'png header declares zero size 0x5'),
], ids=['undecodable', 'no-sof', 'bad-marker', 'no-ihdr', 'gif', 'empty', 'compressed-depth', 'webp', 'zero-size'])
def test_codec_rejects_bad_compressed_images_with_a_reason(msg: CompressedImage, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        decode_compressed(msg, MAX_PIXELS)


def _with_app_segments(jpeg: bytes) -> bytes:
    """``jpeg`` with an EXIF-like APP1 segment and fill bytes between SOI and the rest, as cameras write."""
    app1 = b'\xff\xe1' + (2 + 300).to_bytes(2, 'big') + bytes(300)
    return jpeg[:2] + app1 + b'\xff\xff' + jpeg[2:]


@pytest.mark.parametrize(('kind', 'encode'), [
    ('png', lambda img: cv2.imencode('.png', img)[1].tobytes()),
    ('jpeg', lambda img: cv2.imencode('.jpg', img)[1].tobytes()),
    ('jpeg', lambda img: cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()),
    ('jpeg', lambda img: _with_app_segments(cv2.imencode('.jpg', img)[1].tobytes())),
], ids=['png', 'jpeg', 'jpeg-progressive', 'jpeg-app1'])
def test_codec_reads_the_size_from_the_header(kind: str, encode) -> None:
    data = encode(np.zeros((37, 53, 3), np.uint8))
    for container in (data, array.array('B', data), np.frombuffer(data, np.uint8)):  # bytes, rclpy, rosbags
        assert compressed_size(container) == (kind, 53, 37)
    assert decode_compressed(_compressed(kind, data), MAX_PIXELS).image.shape == (37, 53, 3)


@pytest.mark.parametrize(('kind', 'bomb'), [('png', png_bomb), ('jpeg', jpeg_bomb)])
def test_codec_rejects_decompression_bombs_from_their_header(kind: str, bomb) -> None:
    msg = _compressed(kind, bomb(20000, 20000))
    reason = f'{kind} header declares 20000x20000 = 400000000 pixels is more than max_pixels={MAX_PIXELS}'
    with pytest.raises(CodecError, match=reason):
        check_compressed(msg, MAX_PIXELS)  # what the node's callback runs: the header only
    with pytest.raises(CodecError, match=reason):
        decode_compressed(msg, MAX_PIXELS)


def test_codec_checks_max_pixels_of_compressed_images() -> None:
    ok, encoded = cv2.imencode('.png', REFERENCE)
    assert ok
    with pytest.raises(CodecError, match='more than max_pixels=100'):
        decode_compressed(_compressed('png', encoded.tobytes()), 100)


@pytest.mark.parametrize('quality', [95, 10])
def test_codec_builds_jpeg_messages_that_decode_back(quality: int) -> None:
    header = Header(frame_id='camera_optical_frame')
    msg = jpeg_message(header, REFERENCE, quality)
    assert msg.header is header and msg.format == JPEG_FORMAT
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    decoded = decode_compressed(msg, MAX_PIXELS)
    error = _error(decoded.rgb(), REFERENCE)
    assert error <= (8.0 if quality == 95 else 30.0), error
    assert len(jpeg_message(header, REFERENCE, 10).data) < len(jpeg_message(header, REFERENCE, 95).data)


@pytest.mark.parametrize(('pixels', 'encoding'), [
    (np.arange(35, dtype=np.uint8).reshape(5, 7), 'mono8'),
    (REFERENCE, 'rgb8'),
    (REFERENCE[:, ::2], 'rgb8'),  # not contiguous
    (np.linspace(0, 1, 35, dtype=np.float32).reshape(5, 7), '32FC1'),
])
def test_codec_builds_images_with_array_data_and_step(pixels: np.ndarray, encoding: str) -> None:
    header = Header(frame_id='camera_optical_frame')
    msg = image_message(header, pixels, encoding)
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    assert msg.header is header and msg.encoding == encoding
    assert (msg.height, msg.width) == pixels.shape[:2]
    assert msg.step == pixels.shape[1] * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1)
    assert msg.is_bigendian == (sys.byteorder == 'big')
    back = np.frombuffer(msg.data, pixels.dtype).reshape(pixels.shape)
    assert np.array_equal(back, pixels)


def test_render_colours_labels_with_the_palette_and_blends() -> None:
    palette = [(1, 2, 3), (40, 50, 60)]
    labels = np.array([[0, 1], [255, 1]], np.uint8)
    color = colorize(labels, palette_lut(palette))
    assert color.tolist() == [[[1, 2, 3], [40, 50, 60]], [[0, 0, 0], [40, 50, 60]]]
    image = np.full((2, 2, 3), 200, np.uint8)
    assert np.array_equal(blend(image, color, 0.0), image)
    assert np.array_equal(blend(image, color, 1.0), color)
    assert blend(image, color, 0.5)[0, 0].tolist() == [100, 101, 102]
