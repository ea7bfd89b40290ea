"""Segmentation datasets on disk, one set of rules for ``rtformer train`` and ``rtformer bag-from-dataset``.

Layouts:
    camvid      SegNet's: ``<root>/<split>/x.png`` + ``<root>/<split>annot/x.png``; ids 0..10, 11 = void.
    cityscapes  ``<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` +
                ``<root>/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (19 train ids, 255 ignore).
    folders     an image directory and a label directory.

Pairing: the label of image ``x.<ext>`` is ``<label dir>/x<suffix>`` with any of `IMAGE_SUFFIXES`, ``.png`` first
(``suffix`` is ``--label-suffix`` in a folder layout, empty otherwise). Labels are single-channel images of class
ids 0..255 (a palette PNG is read as its indices); void ids (CamVid's 11, ``--void-id``) become the ignore id.
CamVid names frames ``<sequence>_<frame>`` (0001TP, 0006R0, 0016E5, Seq05VD), so a file-name prefix selects a
recording.

NumPy and Pillow only: no torch, no ROS (the bag tools run on a robot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from rtformer_ros.classes import IGNORE_INDEX, ClassSet, get_classes
from rtformer_ros.errors import RtformerError, first_line
from rtformer_ros.util import progress

__all__ = [
    'IMAGE_SUFFIXES',
    'LAYOUTS',
    'DatasetError',
    'LabelMap',
    'Layout',
    'Sample',
    'camvid_samples',
    'check_samples',
    'cityscapes_samples',
    'detect_layout',
    'find_samples',
    'folder_classes',
    'folder_samples',
    'image_files',
    'label_histogram',
    'read_image',
    'read_label',
    'read_sample',
    'split_holdout',
]

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.tif', '.tiff')
_LABEL_MODES = ('L', 'P', 'I', 'I;16')  # single-channel id images (PIL: a palette PNG keeps its indices)
_CITYSCAPES_IMAGE, _CITYSCAPES_LABEL = '_leftImg8bit', '_gtFine_labelTrainIds'


class DatasetError(RtformerError, ValueError):
    """A dataset file or directory is missing or unusable; the message names it."""


class Sample(NamedTuple):
    """One image and its label image."""

    image: Path
    label: Path


# ------------------------------------------------------------------------------------------------------ layouts

def image_files(folder: Path) -> list[Path]:
    """The images of a directory (any of `IMAGE_SUFFIXES`, any case), in name order."""
    if not folder.is_dir():
        msg = f'{folder}: no such image directory'
        raise DatasetError(msg)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _label_file(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for spelled in (suffix, suffix.upper()):
            if (folder / f'{stem}{spelled}').is_file():
                return folder / f'{stem}{spelled}'
    return None


def _pair(images: Path, files: Sequence[Path], label_of: Callable[[Path], tuple[Path, str]], hint: str = '',
          ) -> list[Sample]:
    """``label_of(image)`` -> (label directory, label stem); every image must have its label."""
    if not files:
        msg = f'{images}: no images ({", ".join(IMAGE_SUFFIXES)}) found'
        raise DatasetError(msg)
    samples = []
    for image in files:
        folder, stem = label_of(image)
        label = _label_file(folder, stem)
        if label is None:
            msg = f'{image}: no label named {stem}.* in {folder}{hint}'
            raise DatasetError(msg)
        samples.append(Sample(image, label))
    return samples


def camvid_samples(root: Path, split: str) -> list[Sample]:
    """CamVid in SegNet's layout: ``<root>/<split>/x.png`` with ``<root>/<split>annot/x.png``."""
    images = Path(root) / split
    return _pair(images, image_files(images), lambda p: (p.parent.with_name(f'{split}annot'), p.stem))


def cityscapes_samples(root: Path, split: str) -> list[Sample]:
    """Cityscapes fine annotations as train ids (made by cityscapesScripts' createTrainIdLabelImgs)."""
    images, labels = Path(root) / 'leftImg8bit' / split, Path(root) / 'gtFine' / split
    if not images.is_dir():
        msg = f'{images}: no such image directory'
        raise DatasetError(msg)
    return _pair(images, sorted(images.glob(f'*/*{_CITYSCAPES_IMAGE}.png')),
                 lambda p: (labels / p.parent.name, p.stem.removesuffix(_CITYSCAPES_IMAGE) + _CITYSCAPES_LABEL),
                 hint=' (make trainId labels with cityscapesScripts createTrainIdLabelImgs)')


def folder_samples(images: Path, labels: Path, suffix: str = '') -> list[Sample]:
    """Any image directory with a label directory holding ``<image stem><suffix>.png`` (or .bmp, .tif, ...)."""
    images, labels = Path(images), Path(labels)
    files = image_files(images)
    if not labels.is_dir():
        msg = f'{labels}: no such label directory'
        raise DatasetError(msg)
    return _pair(images, files, lambda p: (labels, f'{p.stem}{suffix}'))


@dataclass(frozen=True)
class Layout:
    """A known on-disk layout: how to list a split, its classes and its void ids."""

    find: Callable[[Path, str], list[Sample]]
    classes: str
    void_ids: tuple[int, ...] = ()


LAYOUTS: dict[str, Layout] = {
    'camvid': Layout(camvid_samples, 'camvid', void_ids=(11,)),  # the id after the last class
    'cityscapes': Layout(cityscapes_samples, 'cityscapes'),  # trainIds: void is 255 already
}


def detect_layout(root: Path, split: str) -> str:
    """The name of the layout ``root`` holds ('cityscapes' or 'camvid')."""
    if (root / 'leftImg8bit').is_dir():
        return 'cityscapes'
    if (root / split).is_dir() and (root / f'{split}annot').is_dir():
        return 'camvid'
    msg = f'{root}: neither CamVid ({split}/ + {split}annot/) nor Cityscapes (leftImg8bit/ + gtFine/) layout'
    raise DatasetError(msg)


def find_samples(root: Path | None = None, split: str = 'val', layout: str = 'auto', images: Path | None = None,
                 labels: Path | None = None) -> tuple[list[Sample], int | None]:
    """The samples of ``--root`` (a layout) or of ``--images`` + ``--labels``, and the void id to map to 255.

    Raises:
        DatasetError: both or neither source given, no layout recognised, a folder missing, an image without label.
    """
    if images is not None or labels is not None:
        if images is None or labels is None or root is not None:
            msg = 'give --images and --labels together, or --root alone'
            raise DatasetError(msg)
        return folder_samples(images, labels), None
    if root is None:
        msg = 'give --root (CamVid or Cityscapes layout) or --images and --labels'
        raise DatasetError(msg)
    if layout == 'auto':
        layout = detect_layout(root, split)
    if layout not in LAYOUTS:
        msg = f'unknown layout {layout!r} (use auto, {", ".join(LAYOUTS)})'
        raise DatasetError(msg)
    spec = LAYOUTS[layout]
    return spec.find(root, split), next(iter(spec.void_ids), None)


def split_holdout(samples: Sequence[Sample], sequences: Sequence[str]) -> tuple[list[Sample], list[Sample]]:
    """(kept, held out): a sample is held out when its image file name starts with one of ``sequences``.

    CamVid names frames ``<sequence>_<frame>``, so a prefix selects a whole recording: validating on a sequence
    that training never saw predicts other streets, where frames of the training sequences do not.
    """
    prefixes = tuple(sequences)
    if not prefixes:
        return list(samples), []
    held = [s for s in samples if s.image.name.startswith(prefixes)]
    return [s for s in samples if not s.image.name.startswith(prefixes)], held


def folder_classes(classes: str | None, num_classes: int | None) -> ClassSet:
    """Classes of a folder dataset: a names file (one per line), or a dataset name with a class count.

    Raises:
        DatasetError: empty names file, or a count that contradicts the names / the named dataset.
    """
    path = Path(classes) if classes else None
    try:
        if path is not None and path.is_file():
            names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
            if not names or (num_classes is not None and num_classes != len(names)):
                msg = f'{path}: {len(names)} class names, expected {num_classes or "at least 1"}'
                raise DatasetError(msg)
            # Same palette rule as every generic dataset; only the names come from the file.
            return replace(get_classes(path.stem, len(names)), names=names)
        return get_classes(classes or 'custom', num_classes)
    except ValueError as err:
        if isinstance(err, DatasetError):
            raise
        msg = f'--classes {classes!r}: {err}'
        raise DatasetError(msg) from None


# ------------------------------------------------------------------------------------------------------ labels

@dataclass(frozen=True)
class LabelMap:
    """Which label ids are classes, which are void (mapped to the ignore id), and the lookup doing it.

    ``num_classes`` None takes every id 0..255 as it is (a bag of a folder dataset has no class count).
    """

    num_classes: int | None
    void_ids: tuple[int, ...] = ()
    lut: np.ndarray = field(init=False, repr=False, compare=False)  # raw id -> training id
    valid: np.ndarray = field(init=False, repr=False, compare=False)  # raw id -> allowed

    def __post_init__(self) -> None:
        bad = [void for void in self.void_ids if not 0 <= void <= 255]
        if bad:
            msg = f'void id {bad[0]}: label ids lie in 0..255'
            raise DatasetError(msg)
        classes = 256 if self.num_classes is None else self.num_classes
        lut = np.full(256, 0, np.uint8)
        valid = np.zeros(256, bool)
        lut[:classes] = np.arange(classes)
        valid[:classes] = True
        for void in (*self.void_ids, IGNORE_INDEX):
            lut[void], valid[void] = IGNORE_INDEX, True
        object.__setattr__(self, 'lut', lut)
        object.__setattr__(self, 'valid', valid)

    def describe(self) -> str:
        void = f', void {", ".join(map(str, self.void_ids))}' if self.void_ids else ''
        if self.num_classes is None:
            return f'ids 0..255{void}'
        return f'classes 0..{self.num_classes - 1}{void}, ignore {IGNORE_INDEX}'

    def check(self, label: np.ndarray, path: Path) -> None:
        """Raises DatasetError naming ``path`` when ``label`` holds ids that are neither classes, void nor ignore."""
        ids = np.unique(label)
        bad = ids[(ids < 0) | (ids > 255) | ~self.valid[np.clip(ids, 0, 255)]]
        if bad.size:
            shown = ', '.join(str(int(v)) for v in bad[:8]) + (', ...' if bad.size > 8 else '')
            msg = f'{path}: label ids {shown} out of range ({self.describe()})'
            raise DatasetError(msg)

    def __call__(self, label: np.ndarray) -> np.ndarray:
        """Raw ids -> training ids (uint8), void -> ignore. Ids must have passed `check`."""
        return self.lut[label]


def read_label(path: Path) -> np.ndarray:
    """The (H, W) class ids of a label image, as stored (uint8, or wider for 16/32-bit images).

    Raises:
        DatasetError: unreadable, or not a single-channel image (colour-coded labels).
    """
    try:
        with Image.open(path) as img:
            if img.mode not in _LABEL_MODES:
                msg = (f'{path}: label image has mode {img.mode}; expected single-channel class ids '
                       '(convert colour-coded labels to ids first)')
                raise DatasetError(msg)
            return np.asarray(img)
    except OSError as err:
        msg = f'{path}: unreadable label ({first_line(err)})'
        raise DatasetError(msg) from None


def read_image(path: Path) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB.

    Raises:
        DatasetError: the file does not decode.
    """
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert('RGB'))
    except OSError as err:
        msg = f'{path}: unreadable image ({first_line(err)})'
        raise DatasetError(msg) from None


def _check_size(sample: Sample, image_hw: tuple[int, int], label: np.ndarray) -> None:
    if label.shape != image_hw:
        msg = (f'{sample.label}: label is {label.shape[0]}x{label.shape[1]} (HxW) '
               f'but image {sample.image} is {image_hw[0]}x{image_hw[1]}')
        raise DatasetError(msg)


def read_sample(sample: Sample, label_map: LabelMap) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image (H, W, 3) uint8, training ids (H, W) uint8), checked as `check_samples` does."""
    image, label = read_image(sample.image), read_label(sample.label)
    _check_size(sample, image.shape[:2], label)
    label_map.check(label, sample.label)
    return image, label_map(label)


def _check_sample(sample: Sample, label_map: LabelMap) -> None:
    try:
        with Image.open(sample.image) as img:  # the header only: checking a split must not decode it twice
            width, height = img.size
    except OSError as err:
        msg = f'{sample.image}: unreadable image ({first_line(err)})'
        raise DatasetError(msg) from None
    label = read_label(sample.label)
    _check_size(sample, (height, width), label)
    label_map.check(label, sample.label)


def check_samples(samples: Sequence[Sample], label_map: LabelMap, desc: str = 'checking') -> None:
    """Open every pair once: readable, same size, label ids known. Run before training starts.

    Raises:
        DatasetError: the first bad file, named, with the problem.
    """
    for sample in progress(samples, desc=desc, unit='img', leave=False):
        _check_sample(sample, label_map)


def label_histogram(samples: Sequence[Sample], label_map: LabelMap, desc: str = 'counting labels') -> np.ndarray:
    """Pixels per class over checked ``samples`` (void and ignore not counted), int64 of length ``num_classes``."""
    counts = np.zeros(256, np.int64)
    for sample in progress(samples, desc=desc, unit='img', leave=False):
        counts += np.bincount(label_map(read_label(sample.label)).ravel(), minlength=256)
    return counts[:label_map.num_classes]
