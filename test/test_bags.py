"""bag-from-dataset, the bag reader/writer, and the node's codec on rosbags messages, on real bags in tmp_path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import rtformer, rtformer_error

from rtformer_ros.bags.dataset import DEFAULT_START_NS
from rtformer_ros.bags.reader import BagReader
from rtformer_ros.bags.writer import TYPESTORE, BagWriter, compressed_message, image_message, segmentation_topics
from rtformer_ros.datasets import find_samples
from rtformer_ros.image.codec import CodecError, decode_compressed, decode_image, decode_labels
from rtformer_ros.util import header_stamp_ns

FRAMES = 3


def read_topic(path: Path, topic: str) -> list[tuple[int, object]]:
    """(bag time, message) of every message on ``topic``."""
    with BagReader(path) as bag:
        return [(t, bag.deserialize(raw, topic)) for _, t, raw in bag.messages([topic])]


def camvid_files(camvid_dir: Path, count: int) -> list[tuple[Path, Path]]:
    images = sorted((camvid_dir / 'val').glob('*.png'))[:count]
    return [(image, camvid_dir / 'valannot' / image.name) for image in images]


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_camvid_bag_holds_bgr8_frames_and_mono8_labels_at_the_rate(camvid_dir: Path, tmp_path: Path,
                                                                    storage: str) -> None:
    out = tmp_path / 'camvid'
    assert rtformer('bag-from-dataset', '-o', out, '--root', camvid_dir, '--limit', FRAMES, '--storage', storage,
                    '--rate', '4', '--frame-id', 'cam0').rc == 0
    with BagReader(out) as bag:
        assert bag.topics == {'/camera/image_raw': 'sensor_msgs/msg/Image', '/camera/labels': 'sensor_msgs/msg/Image'}
    images = read_topic(out, '/camera/image_raw')
    labels = read_topic(out, '/camera/labels')
    assert len(images) == len(labels) == FRAMES
    for index, ((image_file, label_file), (t_img, img), (t_lab, lab)) in enumerate(
            zip(camvid_files(camvid_dir, FRAMES), images, labels, strict=True)):
        stamp = DEFAULT_START_NS + index * 250_000_000
        assert t_img == t_lab == stamp
        for msg in (img, lab):
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
            assert msg.header.frame_id == 'cam0'
            assert (msg.height, msg.width) == (360, 480)
        assert img.encoding == 'bgr8' and img.step == 480 * 3
        np.testing.assert_array_equal(img.data.reshape(360, 480, 3), cv2.imread(str(image_file)))
        assert lab.encoding == 'mono8' and lab.step == 480
        truth = cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED)
        expect = np.where(truth == 11, 255, truth)  # CamVid void -> ignore
        np.testing.assert_array_equal(lab.data.reshape(360, 480), expect)
    assert any((cv2.imread(str(f), cv2.IMREAD_UNCHANGED) == 11).any() for _, f in camvid_files(camvid_dir, FRAMES))


def test_compressed_camvid_bag_holds_jpegs_on_the_compressed_topic(camvid_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / 'jpeg'
    assert rtformer('bag-from-dataset', '-o', out, '--root', camvid_dir, '--limit', '2', '--compressed',
                    '--storage', 'mcap', '--start', '12.5').rc == 0
    images = read_topic(out, '/camera/image_raw/compressed')
    assert [t for t, _ in images] == [12_500_000_000, 12_600_000_000]
    (image_file, _), (_, msg) = camvid_files(camvid_dir, 1)[0], images[0]
    assert 'jpeg' in msg.format
    decoded, order = decode_compressed(msg)
    assert order == 'bgr' and decoded.shape == (360, 480, 3)
    error = np.abs(decoded.astype(int) - cv2.imread(str(image_file)).astype(int)).mean()
    assert error < 4  # JPEG at quality 95


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def test_cityscapes_layout_pairs_train_id_labels_by_city(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for city, name in (('aachen', 'aachen_000001_000019'), ('bonn', 'bonn_000002_000019')):
        write_png(tmp_path / 'leftImg8bit' / 'val' / city / f'{name}_leftImg8bit.png',
                  rng.integers(0, 255, (8, 16, 3), dtype=np.uint8))
        write_png(tmp_path / 'gtFine' / 'val' / city / f'{name}_gtFine_labelTrainIds.png',
                  np.full((8, 16), 255 if city == 'bonn' else 18, np.uint8))
    samples, void = find_samples(tmp_path)
    assert void is None and [s.image.parent.name for s in samples] == ['aachen', 'bonn']
    out = tmp_path / 'bag'
    assert rtformer('bag-from-dataset', '-o', out, '--root', tmp_path).rc == 0
    labels = [decode_labels(msg) for _, msg in read_topic(out, '/camera/labels')]
    assert [int(lab[0, 0]) for lab in labels] == [18, 255]


def test_image_folders_pair_by_stem_and_map_the_void_id(tmp_path: Path) -> None:
    write_png(tmp_path / 'img' / 'a.jpg', np.zeros((4, 6, 3), np.uint8))
    write_png(tmp_path / 'lab' / 'a.png', np.array([[0, 7, 3, 7, 1, 1]] * 4, np.uint8))
    out = tmp_path / 'bag'
    assert rtformer('bag-from-dataset', '-o', out, '--images', tmp_path / 'img', '--labels', tmp_path / 'lab',
                    '--void', '7', '--label-topic', '/gt', '--image-topic', '/cam/image').rc == 0
    (_, msg), = read_topic(out, '/gt')
    np.testing.assert_array_equal(decode_labels(msg)[0], [0, 255, 3, 255, 1, 1])


def test_sequence_keeps_only_the_frames_of_that_recording(tmp_path: Path) -> None:
    for name, value in (('0001TP_000.png', 1), ('0006R0_000.png', 6), ('0006R0_001.png', 6), ('0016E5_000.png', 9)):
        write_png(tmp_path / 'img' / name, np.zeros((4, 6, 3), np.uint8))
        write_png(tmp_path / 'lab' / name, np.full((4, 6), value, np.uint8))
    folders = ('--images', str(tmp_path / 'img'), '--labels', str(tmp_path / 'lab'))
    assert rtformer('bag-from-dataset', '-o', tmp_path / 'held', *folders, '--sequence', '0006R0').rc == 0
    assert [int(decode_labels(msg)[0, 0]) for _, msg in read_topic(tmp_path / 'held', '/camera/labels')] == [6, 6]
    result = rtformer('bag-from-dataset', '-o', tmp_path / 'none', *folders, '--sequence', 'Seq05VD')
    assert result.rc == 1
    assert result.err == 'rtformer bag-from-dataset: --sequence Seq05VD: no frame of the dataset starts with it\n'
    assert not (tmp_path / 'none').exists()


def test_bag_from_dataset_reports_unusable_input_in_one_line(tmp_path: Path) -> None:
    write_png(tmp_path / 'img' / 'a.png', np.zeros((4, 6, 3), np.uint8))
    (tmp_path / 'lab').mkdir()
    folders = ('--images', tmp_path / 'img', '--labels', tmp_path / 'lab')

    def fails(*argv: object) -> str:
        return rtformer_error('bag-from-dataset', '-o', tmp_path / 'x', *argv)

    assert fails(*folders).endswith(f'img/a.png: no label named a.* in {tmp_path / "lab"}')
    assert 'neither CamVid' in fails('--root', tmp_path)
    assert fails('--images', tmp_path / 'img', '--labels', tmp_path / 'no').endswith('no: no such label directory')
    assert fails('--images', tmp_path / 'no', '--labels', tmp_path / 'lab').endswith('no: no such image directory')
    write_png(tmp_path / 'lab' / 'a.png', np.zeros((5, 6), np.uint8))
    assert 'lab/a.png: label is 5x6 (HxW) but image' in fails(*folders)
    assert not (tmp_path / 'x').exists()  # the half-written bag is removed
    (tmp_path / 'exists').mkdir()
    write_png(tmp_path / 'lab' / 'a.png', np.zeros((4, 6), np.uint8))
    assert 'exists already' in rtformer_error('bag-from-dataset', '-o', tmp_path / 'exists', *folders)
    assert fails(*folders, '--void', '300').endswith('void id 300: label ids lie in 0..255')


def image(encoding: str, pixels: np.ndarray, pad: int = 0) -> object:
    """A rosbags Image of ``pixels`` with ``pad`` junk bytes after every row."""
    msg = image_message(5, 'f', pixels, encoding)
    if pad:
        rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
        junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
        msg.data = np.hstack([rows, junk]).reshape(-1)
        msg.step = rows.shape[1] + pad
    return msg


def test_codec_decodes_rosbags_images_in_any_channel_order_despite_row_padding() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for pad in (0, 3):
        out, order = decode_image(image('rgb8', rgb, pad))
        assert order == 'rgb'
        np.testing.assert_array_equal(out, rgb)
        out, order = decode_image(image('bgra8', np.dstack([rgb, np.full((5, 7), 9, np.uint8)]), pad))
        assert order == 'bgr'
        np.testing.assert_array_equal(out, rgb)
        out, _ = decode_image(image('mono8', rgb[..., 0], pad))
        np.testing.assert_array_equal(out, np.repeat(rgb[..., :1], 3, axis=2))
        np.testing.assert_array_equal(decode_labels(image('mono8', rgb[..., 1], pad)), rgb[..., 1])


def test_codec_narrows_padded_16_bit_rosbags_images() -> None:
    rgb16 = (np.random.default_rng(2).integers(0, 255, (4, 6, 3)) * 257).astype('<u2')
    msg = image_message(5, 'f', rgb16.view(np.uint8).reshape(4, -1), 'rgb16')
    msg.width = 6
    rows = msg.data.reshape(4, -1)
    msg.data = np.hstack([rows, np.zeros((4, 4), np.uint8)]).reshape(-1)
    msg.step = 6 * 6 + 4
    out, order = decode_image(msg)
    assert order == 'rgb' and out.dtype == np.uint8
    np.testing.assert_array_equal(out, (rgb16 // 257).astype(np.uint8))


def test_codec_rejects_short_rosbags_buffers_bad_steps_and_garbage_jpegs() -> None:
    msg = image('rgb8', np.zeros((4, 4, 3), np.uint8))
    msg.data = msg.data[:-1]
    with pytest.raises(CodecError, match='data has 47 bytes, step 12 x 4 rows needs 48'):
        decode_image(msg)
    msg = image('rgb8', np.zeros((4, 4, 3), np.uint8))
    msg.step = 5
    with pytest.raises(CodecError, match='step 5 is smaller'):
        decode_image(msg)
    with pytest.raises(CodecError, match="unknown encoding 'weird'"):
        decode_image(image('weird', np.zeros((2, 2), np.uint8)))
    with pytest.raises(CodecError, match='expected mono8'):
        decode_labels(image('rgb8', np.zeros((2, 2, 3), np.uint8)))
    with pytest.raises(CodecError, match='data is neither JPEG nor PNG'):
        decode_compressed(compressed_message(5, 'f', b'garbage', 'jpeg'))
    with pytest.raises(CodecError, match='empty compressed data'):
        decode_compressed(compressed_message(5, 'f', b'', 'jpeg'))
    with pytest.raises(CodecError, match='unsupported compressed format'):
        decode_compressed(compressed_message(5, 'f', b'x', '16UC1; compressedDepth png'))


def test_header_stamp_is_read_from_raw_cdr_and_segmentation_topics_sit_beside_the_camera() -> None:
    raw = TYPESTORE.serialize_cdr(image_message(1_700_000_000_123_456_789, 'f', np.zeros((1, 1), np.uint8),
                                                'mono8'), 'sensor_msgs/msg/Image')
    assert header_stamp_ns(raw) == 1_700_000_000_123_456_789
    big = TYPESTORE.serialize_cdr(image_message(42, 'f', np.zeros((1, 1), np.uint8), 'mono8'),
                                  'sensor_msgs/msg/Image', little_endian=False)
    assert header_stamp_ns(big) == 42
    assert header_stamp_ns(b'\x00\x01\x00\x00') is None  # too short for a header: a corrupt message
    assert segmentation_topics('/camera/image_raw')['labels'] == '/camera/segmentation/labels'
    assert segmentation_topics('/a/b/image_raw/compressed')['overlay'] == '/a/b/segmentation/overlay'
    assert segmentation_topics('/image')['color'] == '/segmentation/color'


def test_reader_pairs_by_stamp_and_counts_leftovers(tmp_path: Path) -> None:
    pixels = np.zeros((2, 2), np.uint8)
    with BagWriter(tmp_path / 'bag', 'mcap') as bag:
        bag.add_topic('/a', 'sensor_msgs/msg/Image')
        bag.add_topic('/b', 'sensor_msgs/msg/Image')
        # /b answers late and out of order; stamp 3 has no partner; stamp 1 appears twice on /a.
        for t, topic, stamp in ((1, '/a', 1), (2, '/a', 2), (3, '/a', 3), (4, '/b', 2), (5, '/a', 1), (6, '/b', 1),
                                (7, '/b', 4)):
            bag.write(topic, t, image_message(stamp, 'f', pixels, 'mono8'))
    with BagReader(tmp_path / 'bag') as bag:
        pairing = bag.pair(['/a', '/b'])
        assert pairing.stamps == {1, 2} and pairing.unpaired == {'/a': 2, '/b': 1}
        frames = list(bag.frames(pairing))
        assert [(f.stamp_ns, f.timestamps_ns) for f in frames] == [(2, {'/a': 2, '/b': 4}), (1, {'/a': 1, '/b': 6})]
