"""Image + label datasets -> evaluation bags: camera images and mono8 ground-truth class ids at a fixed rate.

Which files make a sample, and how labels and void ids are read, is `rtformer_ros.datasets` (shared with training,
so a bag holds exactly what training would accept).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from rtformer_ros.bags import BagError
from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE
from rtformer_ros.bags.writer import BagWriter, compressed_message, image_message
from rtformer_ros.datasets import LabelMap, Sample, read_sample
from rtformer_ros.util import NS_PER_S
from rtformer_ros.util import progress as progress_bar

__all__ = ['DEFAULT_START_NS', 'BagSummary', 'load_sample', 'write_dataset_bag']

DEFAULT_START_NS = 1_700_000_000 * NS_PER_S
"""First stamp of a dataset bag (2023-11-14 22:13:20 UTC): fixed, so the same dataset gives the same bag."""


class BagSummary(NamedTuple):
    """What ``write_dataset_bag`` wrote."""

    path: Path
    frames: int
    image_topic: str
    label_topic: str
    first_stamp_ns: int
    last_stamp_ns: int


def load_sample(sample: Sample, void: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image (H, W, 3) uint8, labels (H, W) uint8 with ``void`` mapped to 255).

    Raises:
        DatasetError: a file does not decode, the label is not single-channel ids 0..255, or the sizes differ.
    """
    image, labels = read_sample(sample, LabelMap(None, () if void is None else (void,)))
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels


def write_dataset_bag(
        samples: Sequence[Sample],
        output: Path,
        *,
        void: int | None = None,
        storage: str = 'sqlite3',
        compressed: bool = False,
        jpeg_quality: int = 95,
        rate_hz: float = 10.0,
        start_ns: int = DEFAULT_START_NS,
        frame_id: str = 'camera',
        image_topic: str = '/camera/image_raw',
        label_topic: str = '/camera/labels',
        progress: bool | None = None,
) -> BagSummary:
    """Write ``samples`` as a bag: one image and one mono8 label message per sample with the same stamp.

    Args:
        samples: from ``find_samples``.
        output: folder of the new bag (must not exist).
        void: label id mapped to 255 (ignore).
        storage: 'sqlite3' or 'mcap'.
        compressed: images as JPEG ``sensor_msgs/CompressedImage`` instead of bgr8 ``Image``.
        jpeg_quality: 0..100 for ``compressed``.
        rate_hz: frames per second of header stamps and bag times.
        start_ns: stamp of the first frame (ns since the epoch).
        frame_id: header frame of every message.
        image_topic: topic of the images.
        label_topic: topic of the labels.
        progress: show a tqdm bar (None: only on a terminal).

    Raises:
        DatasetError: a sample cannot be read.
        BagError: a bad rate, or the bag cannot be written.
    """
    if rate_hz <= 0:
        msg = f'rate must be > 0 Hz, got {rate_hz}'
        raise BagError(msg)
    if image_topic == label_topic:
        msg = f'image and label topics are both {image_topic}'
        raise BagError(msg)
    period_ns = 1e9 / rate_hz
    stamp = start_ns
    bag = BagWriter(output, storage)
    bag.open()
    try:
        bag.add_topic(image_topic, COMPRESSED_IMAGE if compressed else IMAGE)
        bag.add_topic(label_topic, IMAGE)
        for index, sample in enumerate(progress_bar(samples, enabled=progress, desc='bag-from-dataset', unit='frame')):
            image, labels = load_sample(sample, void)
            stamp = start_ns + round(index * period_ns)
            if compressed:
                ok, jpeg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                assert ok, sample.image
                # The format string image_transport's compressed publisher writes.
                bag.write(image_topic, stamp, compressed_message(stamp, frame_id, jpeg.reshape(-1),
                                                                 'bgr8; jpeg compressed bgr8'))
            else:
                bag.write(image_topic, stamp, image_message(stamp, frame_id, image, 'bgr8'))
            bag.write(label_topic, stamp, image_message(stamp, frame_id, labels, 'mono8'))
    except BaseException:
        bag.close()
        shutil.rmtree(output, ignore_errors=True)  # a half-written bag would block the next try ("exists")
        raise
    bag.close()
    return BagSummary(output, len(samples), image_topic, label_topic, start_ns, stamp)

