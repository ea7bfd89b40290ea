"""``rtformer eval`` on real bags: metrics against a brute-force numpy computation, bad input, --write-bag."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import IMAGE, LABELS, brute_force, camvid_bag, rtformer, rtformer_error, stripes

from rtformer_ros.bags.dataset import load_sample
from rtformer_ros.bags.reader import BagReader
from rtformer_ros.bags.writer import TYPESTORE, BagWriter, compressed_message, image_message
from rtformer_ros.datasets import find_samples
from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.image.codec import decode_image, decode_labels

FRAMES = 4
CAMVID_CLASSES = 11


def report(out: Path) -> dict:
    return json.loads((out / 'report.json').read_text())


def camvid_truth(camvid_dir: Path, tiny_model: Path, jpeg: bool = False) -> dict[str, object]:
    """Brute-force scores of the tiny model on the first CamVid val frames read straight from the PNGs."""
    samples, void = find_samples(camvid_dir, 'val')
    labels, preds = [], []
    with SegmentationEngine(tiny_model, providers='cpu') as engine:
        for sample in samples[:FRAMES]:
            bgr, label = load_sample(sample, void)
            if jpeg:  # the same encoder and quality as bag-from-dataset --compressed
                bgr = cv2.imdecode(cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_COLOR)
            preds.append(engine.infer(bgr, 'bgr').labels)
            labels.append(label)
    return brute_force(labels, preds, CAMVID_CLASSES)


def assert_scores(got: dict, expect: dict) -> None:
    names = list(got['per_class_iou'])
    assert len(names) == CAMVID_CLASSES and names[0] == 'Sky'
    for name, want in zip(names, expect['iou'], strict=True):
        value = got['per_class_iou'][name]
        assert (value is None) if math.isnan(want) else value == pytest.approx(want, abs=1e-12), name
    assert got['miou'] == pytest.approx(expect['miou'], abs=1e-12)
    assert got['pixel_accuracy'] == pytest.approx(expect['acc'], abs=1e-12)
    assert got['fw_iou'] == pytest.approx(expect['fw'], abs=1e-12)
    assert got['pixels'] == expect['pixels']


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_eval_scores_equal_brute_force_on_camvid(camvid_dir: Path, tiny_model: Path, tmp_path: Path,
                                                 storage: str) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', FRAMES, storage=storage)
    out = tmp_path / 'report'
    assert rtformer('eval', '--bag', bag, '--image-topic', IMAGE, '--label-topic', LABELS, '--model', tiny_model,
                    '--out', out, '--providers', 'cpu').rc == 0
    got = report(out)
    assert_scores(got, camvid_truth(camvid_dir, tiny_model))
    assert got['frames'] == FRAMES and got['unpaired'] == 0 and got['skipped'] == 0
    assert set(got['latency_ms']) >= {'p50', 'p95', 'p99'} and got['latency_ms']['p50'] > 0
    assert got['throughput_fps'] > 0
    confusion = np.asarray(got['confusion'])
    assert confusion.shape == (CAMVID_CLASSES, CAMVID_CLASSES) and confusion.sum() == got['pixels']
    assert got['model']['dataset'] == 'camvid' and got['bag']['label_topic'] == LABELS
    for name in ('report.md', 'iou.png', 'confusion.png', 'samples.png'):
        assert (out / name).stat().st_size > 0, name
    assert '| mIoU |' in (out / 'report.md').read_text()


def test_eval_scores_compressed_images_like_their_decoded_jpegs(camvid_dir: Path, tiny_model: Path,
                                                                tmp_path: Path) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', FRAMES, storage='mcap', compressed=True)
    out = tmp_path / 'report'
    assert rtformer('eval', '--bag', bag, '--image-topic', IMAGE + '/compressed', '--label-topic', LABELS,
                    '--model', tiny_model, '--out', out).rc == 0
    assert_scores(report(out), camvid_truth(camvid_dir, tiny_model, jpeg=True))


def blocks(size: tuple[int, int] = (16, 24)) -> tuple[np.ndarray, np.ndarray]:
    """A BGR frame of red | green | blue thirds and labels 0 | 1 | 5: the tiny model gets 0 and 1 right."""
    bgr = stripes(size, (0, 0, 255), (0, 255, 0), (255, 0, 0))
    labels = np.choose(np.arange(size[1]) * 3 // size[1], [0, 1, 5]).astype(np.uint8)
    return bgr, np.tile(labels, (size[0], 1))


def one_frame_bag(path: Path, bgr: np.ndarray, labels: np.ndarray, label_stamp: int = 1) -> None:
    """A bag of one bgr8 frame at stamp 1 and mono8 labels at ``label_stamp``."""
    with BagWriter(path) as bag:
        bag.add_topic(IMAGE, 'sensor_msgs/msg/Image')
        bag.add_topic(LABELS, 'sensor_msgs/msg/Image')
        bag.write(IMAGE, 1, image_message(1, 'cam', bgr, 'bgr8'))
        bag.write(LABELS, label_stamp, image_message(label_stamp, 'cam', labels, 'mono8'))


def test_eval_counts_unpaired_and_corrupt_messages_and_scores_the_rest(tiny_model: Path, tmp_path: Path) -> None:
    bgr, labels = blocks()
    raw_bag, jpeg_bag = tmp_path / 'raw', tmp_path / 'jpeg'
    with BagWriter(raw_bag) as bag, BagWriter(jpeg_bag, 'mcap') as jbag:
        for writer, kind in ((bag, 'sensor_msgs/msg/Image'), (jbag, 'sensor_msgs/msg/CompressedImage')):
            writer.add_topic(IMAGE, kind)
            writer.add_topic(LABELS, 'sensor_msgs/msg/Image')
        jpeg = cv2.imencode('.png', bgr)[1].reshape(-1)  # lossless, so the expected scores stay exact
        for stamp in (10, 20, 30):
            bag.write(IMAGE, stamp, image_message(stamp, 'cam', bgr, 'bgr8'))
            jbag.write(IMAGE, stamp, compressed_message(stamp, 'cam', jpeg, 'png'))
            for writer in (bag, jbag):
                writer.write(LABELS, stamp, image_message(stamp, 'cam', labels, 'mono8'))
        # Stamp 40: truncated CDR; 50: valid CDR whose data is shorter than height x step; 60: image only;
        # 70: labels only.
        raw = bytes(TYPESTORE.serialize_cdr(image_message(40, 'cam', bgr, 'bgr8'), 'sensor_msgs/msg/Image'))
        bag.write_raw(IMAGE, 40, raw[:len(raw) // 2])
        short = image_message(50, 'cam', bgr, 'bgr8')
        short.data = short.data[:100]
        bag.write(IMAGE, 50, short)
        bag.write(IMAGE, 60, image_message(60, 'cam', bgr, 'bgr8'))
        jbag.write(IMAGE, 40, compressed_message(40, 'cam', b'\xff\xd8 not a jpeg at all', 'jpeg'))
        for writer in (bag, jbag):
            for stamp in (40, 50, 70):
                writer.write(LABELS, stamp, image_message(stamp, 'cam', labels, 'mono8'))
    # Per frame: class 0 and 1 right, class 5 (blue) predicted as 2: IoU 1, 1, 0 (2), 0 (5).
    for bag, skipped, unpaired in ((raw_bag, {'corrupt': 1, 'undecodable': 1}, {IMAGE: 1, LABELS: 1}),
                                   (jpeg_bag, {'undecodable': 1}, {IMAGE: 0, LABELS: 2})):
        out = tmp_path / f'{bag.name}_report'
        assert rtformer('eval', '--bag', bag, '--image-topic', IMAGE, '--label-topic', LABELS, '--model', tiny_model,
                        '--out', out).rc == 0
        got = report(out)
        assert got['frames'] == 3
        assert got['skipped_by_reason'] == skipped and got['skipped'] == sum(skipped.values())
        assert got['unpaired_by_topic'] == unpaired and got['unpaired'] == sum(unpaired.values())
        iou = got['per_class_iou']
        assert (iou['Sky'], iou['Building'], iou['Pole'], iou['Tree'], iou['Road']) == (1.0, 1.0, 0.0, 0.0, None)
        assert got['miou'] == pytest.approx(0.5) and got['pixel_accuracy'] == pytest.approx(2 / 3)
        # The node's out-of-domain band comes from the confidence of the scored frames (all three the same).
        with SegmentationEngine(tiny_model, providers='cpu') as engine:
            confidence = engine.infer(bgr, 'bgr').confidence
        mean, low = float(confidence.mean()), float((confidence < 0.5).mean())
        conf = got['confidence']
        assert conf['frames'] == 3 and conf['threshold'] == 0.5
        assert conf['mean'] == pytest.approx(mean, abs=1e-6) and conf['frame_mean_p1'] == pytest.approx(mean, abs=1e-6)
        assert conf['low_share'] == pytest.approx(low, abs=1e-6)
        assert conf['ood_band'] == {'ood_threshold': 0.5, 'ood_min_confidence': math.floor(mean * 100) / 100,
                                    'ood_max_low_share': math.ceil(low * 100) / 100}
        assert 'Out-of-domain band for rtformer_node' in (out / 'report.md').read_text()


def test_eval_of_missing_topic_lists_the_bags_topics(camvid_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', FRAMES)
    err = rtformer_error('eval', '--bag', bag, '--image-topic', '/cam/nope', '--label-topic', LABELS, '--model',
                         tiny_model, '--out', tmp_path / 'r')
    assert 'no topic /cam/nope' in err
    assert '/camera/image_raw (sensor_msgs/msg/Image), /camera/labels (sensor_msgs/msg/Image)' in err
    assert not (tmp_path / 'r').exists()


def test_eval_of_missing_or_unreadable_bag_is_one_line(tiny_model: Path, tmp_path: Path) -> None:
    args = ('--image-topic', IMAGE, '--label-topic', LABELS, '--model', tiny_model, '--out', tmp_path / 'r')
    assert rtformer('eval', '--bag', tmp_path / 'nothing', *args) == (
        1, '', f'rtformer eval: {tmp_path / "nothing"}: no such bag\n')
    (tmp_path / 'empty').mkdir()
    assert 'empty: cannot read bag' in rtformer_error('eval', '--bag', tmp_path / 'empty', *args)


def test_eval_stops_on_label_ids_beyond_the_models_classes(tiny_model: Path, tmp_path: Path) -> None:
    bgr, labels = blocks()
    labels[0, 0] = 19  # a Cityscapes id against an 11-class CamVid model
    one_frame_bag(tmp_path / 'bag', bgr, labels)
    err = rtformer_error('eval', '--bag', tmp_path / 'bag', '--image-topic', IMAGE, '--label-topic', LABELS,
                         '--model', tiny_model, '--out', tmp_path / 'r', '--write-bag', tmp_path / 'seg')
    assert '/camera/labels at stamp 0.000000001: label id 19 is outside 0..10' in err and '11 classes' in err
    assert not (tmp_path / 'seg').exists()  # no half-written bag left behind


def test_eval_with_nothing_scorable_fails(tiny_model: Path, tmp_path: Path) -> None:
    bgr, labels = blocks()
    one_frame_bag(tmp_path / 'bag', bgr, labels, label_stamp=2)  # labels of another frame: nothing pairs
    err = rtformer_error('eval', '--bag', tmp_path / 'bag', '--image-topic', IMAGE, '--label-topic', LABELS,
                         '--model', tiny_model, '--out', tmp_path / 'r')
    assert 'no frame could be scored (0 paired by stamp; unpaired: /camera/image_raw 1, /camera/labels 1' in err


def test_write_bag_round_trip_keeps_stamps_and_adds_segmentation_topics(
        camvid_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', FRAMES)
    written = tmp_path / 'segmented'
    assert rtformer('eval', '--bag', bag, '--image-topic', IMAGE, '--label-topic', LABELS, '--model', tiny_model,
                    '--out', tmp_path / 'r', '--write-bag', written, '--storage', 'mcap').rc == 0
    seg = {kind: f'/camera/segmentation/{kind}' for kind in ('labels', 'color', 'overlay')}
    with BagReader(bag) as src, BagReader(written) as out:
        assert out.topics == {IMAGE: 'sensor_msgs/msg/Image', **{t: 'sensor_msgs/msg/Image' for t in seg.values()}}
        inputs = list(src.messages([IMAGE]))
        copies = list(out.messages([IMAGE]))
        assert [(t, bytes(raw)) for _, t, raw in copies] == [(t, bytes(raw)) for _, t, raw in inputs]
        with SegmentationEngine(tiny_model, providers='cpu') as engine:
            expected = [engine.infer(*decode_image(src.deserialize(raw, IMAGE))).labels for _, _, raw in inputs]
        for kind, topic in seg.items():
            messages = [(t, out.deserialize(raw, topic)) for _, t, raw in out.messages([topic])]
            assert [t for t, _ in messages] == [t for _, t, _ in inputs], kind
            for (_, msg), (_, t, _), pred in zip(messages, inputs, expected, strict=True):
                assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == t
                assert msg.header.frame_id == 'camera'
                assert (msg.height, msg.width) == (360, 480)
                assert msg.encoding == ('mono8' if kind == 'labels' else 'rgb8')
                if kind == 'labels':
                    np.testing.assert_array_equal(decode_labels(msg), pred)
    assert report(tmp_path / 'r')['write_bag']['messages'][seg['overlay']] == FRAMES
    err = rtformer_error('eval', '--bag', bag, '--image-topic', IMAGE, '--label-topic', LABELS, '--model', tiny_model,
                         '--out', tmp_path / 'r', '--write-bag', written)
    assert f'{written}: exists already, not overwriting' in err


def test_eval_scores_recorded_predictions_without_a_model(camvid_dir: Path, tmp_path: Path) -> None:
    _, labels = blocks()
    pred = labels.copy()
    pred[:, :2] = 3
    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic(LABELS, 'sensor_msgs/msg/Image')
        bag.add_topic('/seg', 'sensor_msgs/msg/Image')
        for stamp in (1, 2):
            bag.write(LABELS, stamp, image_message(stamp, 'cam', labels, 'mono8'))
            bag.write('/seg', stamp + 5, image_message(stamp, 'cam', pred, 'mono8'))
    expect = brute_force([labels] * 2, [pred] * 2, 6)
    assert rtformer('eval', '--bag', tmp_path / 'bag', '--label-topic', LABELS, '--pred-topic', '/seg',
                    '--out', tmp_path / 'generic').rc == 0
    got = report(tmp_path / 'generic')
    assert list(got['per_class_iou']) == [f'class_{i}' for i in range(6)]  # ids seen: 0..5
    assert got['miou'] == pytest.approx(expect['miou']) and got['latency_ms']['p50'] is None
    assert rtformer('eval', '--bag', tmp_path / 'bag', '--label-topic', LABELS, '--pred-topic', '/seg',
                    '--dataset', 'camvid', '--out', tmp_path / 'camvid').rc == 0
    got = report(tmp_path / 'camvid')
    assert got['per_class_iou']['Road'] == pytest.approx(expect['iou'][3]) and got['frames'] == 2


def test_eval_needs_neither_torch_nor_ros_packages(tiny_model: Path, tmp_path: Path) -> None:
    bgr, labels = blocks()
    one_frame_bag(tmp_path / 'bag', bgr, labels)
    # A robot install: ONNX Runtime, no torch, maybe no ROS. None in sys.modules makes an import fail.
    blocked = ('torch', 'rclpy', 'sensor_msgs', 'std_msgs')
    script = (
        f'import sys; sys.modules.update(dict.fromkeys({blocked!r}))\n'
        'from rtformer_ros.cli import main\n'
        "sys.exit(main(['eval', *sys.argv[1:]]))\n")
    result = subprocess.run([sys.executable, '-c', script, '--bag', str(tmp_path / 'bag'), '--image-topic', IMAGE,
                             '--label-topic', LABELS, '--model', str(tiny_model), '--out', str(tmp_path / 'r'),
                             '--write-bag', str(tmp_path / 'seg')], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert report(tmp_path / 'r')['miou'] == pytest.approx(0.5)
