"""Image + label datasets -> evaluation bags: camera images and mono8 ground-truth class ids at a fixed rate.

Layouts:

- CamVid (SegNet split): ``<root>/<split>/*.png`` and ``<root>/<split>annot/*.png`` (same names); void 11 -> 255.
- Cityscapes: ``<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
  ``<root>/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (trainIds, void already 255).
- Folders: ``--images DIR --labels DIR``, paired by file stem (``a.jpg`` with ``a.png``); ``--void ID`` -> 255.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from rtformer_ros.bags.errors import BagError
from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE
from rtformer_ros.bags.writer import BagWriter, compressed_message, image_message
from rtformer_ros.classes import IGNORE_INDEX, get_classes

__all__ = ['DEFAULT_START_NS', 'LAYOUTS', 'BagSummary', 'Sample', 'find_samples', 'load_sample',
           'write_dataset_bag']

DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000
"""First stamp of a dataset bag (2023-11-14 22:13:20 UTC): fixed, so the same dataset gives the same bag."""

_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.tif', '.tiff')
_CITYSCAPES_IMAGE = '_leftImg8bit'
_CITYSCAPES_LABEL = '_gtFine_labelTrainIds'


class Sample(NamedTuple):
    """One image and its label file."""

    image: Path
    label: Path


class BagSummary(NamedTuple):
    """What ``write_dataset_bag`` wrote."""

    path: Path
    frames: int
    image_topic: str
    label_topic: str
    first_stamp_ns: int
    last_stamp_ns: int


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        msg = f'{folder}: no such folder'
        raise BagError(msg)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())


def _camvid(root: Path, split: str) -> list[Sample]:
    labels = root / f'{split}annot'
    samples = []
    for image in _images(root / split):
        label = labels / f'{image.stem}.png'
        if not label.is_file():
            msg = f'{image}: no label {label}'
            raise BagError(msg)
        samples.append(Sample(image, label))
    return samples


def _cityscapes(root: Path, split: str) -> list[Sample]:
    images = root / 'leftImg8bit' / split
    if not images.is_dir():
        msg = f'{images}: no such folder'
        raise BagError(msg)
    samples = []
    for image in sorted(images.glob(f'*/*{_CITYSCAPES_IMAGE}.png')):
        stem = image.name[:-len(f'{_CITYSCAPES_IMAGE}.png')]
        label = root / 'gtFine' / split / image.parent.name / f'{stem}{_CITYSCAPES_LABEL}.png'
        if not label.is_file():
            msg = f'{image}: no label {label} (make trainId labels with cityscapesscripts createTrainIdLabelImgs)'
            raise BagError(msg)
        samples.append(Sample(image, label))
    return samples


LAYOUTS: dict[str, tuple[Callable[[Path, str], list[Sample]], str | None]] = {
    'camvid': (_camvid, 'camvid'),
    'cityscapes': (_cityscapes, 'cityscapes'),
}
"""Layout name -> (sample finder, dataset whose class count marks void)."""


def _detect(root: Path, split: str) -> str:
    if (root / 'leftImg8bit').is_dir():
        return 'cityscapes'
    if (root / split).is_dir() and (root / f'{split}annot').is_dir():
        return 'camvid'
    msg = f'{root}: neither CamVid ({split}/ + {split}annot/) nor Cityscapes (leftImg8bit/ + gtFine/) layout'
    raise BagError(msg)


def find_samples(root: Path | None = None, split: str = 'val', layout: str = 'auto', images: Path | None = None,
                 labels: Path | None = None) -> tuple[list[Sample], int | None]:
    """The dataset's (image, label) files in name order, and the label id to map to ignore (255), if any.

    Args:
        root: dataset root for the CamVid/Cityscapes layouts.
        split: 'train', 'val', 'test'.
        layout: 'auto', 'camvid' or 'cityscapes' (with ``root``).
        images: image folder (instead of ``root``).
        labels: label folder paired with ``images`` by file stem.

    Raises:
        BagError: no layout recognised, a folder missing, an image without label, or no samples.
    """
    if images is not None or labels is not None:
        if images is None or labels is None or root is not None:
            msg = 'give --images and --labels together, or --root alone'
            raise BagError(msg)
        by_stem = {p.stem: p for p in _images(labels)}
        samples = []
        for image in _images(images):
            label = by_stem.get(image.stem)
            if label is None:
                msg = f'{image}: no label named {image.stem}.* in {labels}'
                raise BagError(msg)
            samples.append(Sample(image, label))
        void = None
        source = images
    else:
        if root is None:
            msg = 'give --root (CamVid or Cityscapes layout) or --images and --labels'
            raise BagError(msg)
        if layout == 'auto':
            layout = _detect(root, split)
        if layout not in LAYOUTS:
            msg = f'unknown layout {layout!r} (use auto, {", ".join(LAYOUTS)})'
            raise BagError(msg)
        finder, dataset = LAYOUTS[layout]
        samples = finder(root, split)
        # CamVid's label files carry void as the id after the last class (11); Cityscapes trainIds use 255.
        void = get_classes(dataset).num_classes if layout == 'camvid' and dataset else None
        source = root
    if not samples:
        msg = f'{source}: no images found'
        raise BagError(msg)
    return samples, void


def load_sample(sample: Sample, void: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image (H, W, 3) uint8, labels (H, W) uint8 with ``void`` mapped to 255).

    Raises:
        BagError: a file does not decode, the label is not single-channel 8-bit, or the sizes differ.
    """
    image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
    if image is None:
        msg = f'{sample.image}: cannot read image'
        raise BagError(msg)
    labels = cv2.imread(str(sample.label), cv2.IMREAD_UNCHANGED)
    if labels is None:
        msg = f'{sample.label}: cannot read label image'
        raise BagError(msg)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        msg = f'{sample.label}: label image is {labels.dtype} {labels.shape}, expected 8-bit single channel ids'
        raise BagError(msg)
    if labels.shape != image.shape[:2]:
        msg = f'{sample.label}: label size {labels.shape} differs from image size {image.shape[:2]}'
        raise BagError(msg)
    if void is not None and void != IGNORE_INDEX:
        labels[labels == void] = IGNORE_INDEX
    return image, labels


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
        BagError: a sample cannot be read, a bad rate, or the bag cannot be written.
    """
    from tqdm import tqdm

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
        for index, sample in enumerate(tqdm(samples, desc='bag-from-dataset', unit='frame', disable=_quiet(progress))):
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


def _quiet(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None hides the bar when stderr is not a terminal."""
    return None if progress is None else not progress
