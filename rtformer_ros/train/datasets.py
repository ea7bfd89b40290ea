"""Segmentation datasets on disk: layouts, a validation pass, a map-style dataset and an iteration sampler.

Layouts:
    camvid      SegNet's: ``<root>/<split>/*.png`` + ``<root>/<split>annot/*.png``, ids 0..10, 11 = void.
    cityscapes  ``<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` +
                ``<root>/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (19 train ids, 255 ignore).
    folder      any ``--train-images``/``--train-labels`` pair of directories; label = ``<stem><suffix>.png``.

NumPy and PIL only: torch's DataLoader takes any object with ``__len__``/``__getitem__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from rtformer_ros.classes import IGNORE_INDEX, ClassSet, get_classes
from rtformer_ros.errors import RtformerError
from rtformer_ros.train.transforms import to_input

__all__ = [
    'IMAGE_SUFFIXES',
    'LAYOUTS',
    'DatasetError',
    'IterationBatches',
    'LabelMap',
    'Layout',
    'Sample',
    'SegmentationDataset',
    'camvid_samples',
    'check_samples',
    'cityscapes_samples',
    'folder_classes',
    'folder_samples',
    'label_histogram',
    'split_holdout',
]

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
_LABEL_MODES = ('L', 'P', 'I', 'I;16')  # single-channel id images

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


class DatasetError(RtformerError, ValueError):
    """A dataset file or directory is missing or unusable; the message names it."""


class Sample(NamedTuple):
    """One image and its label image."""

    image: Path
    label: Path


# ------------------------------------------------------------------------------------------------------ layouts

def _pair(images: Path, files: Sequence[Path], label_of: Callable[[Path], Path]) -> list[Sample]:
    if not images.is_dir():
        msg = f'{images}: no such image directory'
        raise DatasetError(msg)
    if not files:
        msg = f'{images}: no images ({", ".join(IMAGE_SUFFIXES)}) found'
        raise DatasetError(msg)
    samples = [Sample(path, label_of(path)) for path in sorted(files)]
    for sample in samples:
        if not sample.label.is_file():
            msg = f'{sample.label}: label missing for image {sample.image}'
            raise DatasetError(msg)
    return samples


def _images_in(directory: Path) -> list[Path]:
    return [p for p in directory.glob('*') if p.suffix.lower() in IMAGE_SUFFIXES] if directory.is_dir() else []


def camvid_samples(root: Path, split: str) -> list[Sample]:
    """CamVid in SegNet's layout: ``<root>/<split>/x.png`` with ``<root>/<split>annot/x.png``."""
    images = Path(root) / split
    return _pair(images, _images_in(images), lambda p: p.parent.with_name(f'{split}annot') / p.name)


def cityscapes_samples(root: Path, split: str) -> list[Sample]:
    """Cityscapes fine annotations as train ids (made by cityscapesScripts' createTrainIdLabelImgs)."""
    images = Path(root) / 'leftImg8bit' / split
    labels = Path(root) / 'gtFine' / split
    files = list(images.glob('*/*_leftImg8bit.png'))
    return _pair(images, files, lambda p: labels / p.parent.name / p.name.replace(
        '_leftImg8bit.png', '_gtFine_labelTrainIds.png'))


def folder_samples(images: Path, labels: Path, suffix: str = '') -> list[Sample]:
    """Any images directory with a labels directory holding ``<image stem><suffix>.png``."""
    images, labels = Path(images), Path(labels)
    return _pair(images, _images_in(images), lambda p: labels / f'{p.stem}{suffix}.png')


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


@dataclass(frozen=True)
class Layout:
    """A known on-disk layout: how to list a split, its classes and its void ids."""

    find: Callable[[Path, str], list[Sample]]
    classes: str
    void_ids: tuple[int, ...] = ()


LAYOUTS: dict[str, Layout] = {
    'camvid': Layout(camvid_samples, 'camvid', void_ids=(11,)),
    'cityscapes': Layout(cityscapes_samples, 'cityscapes'),
}


# ------------------------------------------------------------------------------------------------------ labels

@dataclass(frozen=True)
class LabelMap:
    """Which label ids are classes, which are void (mapped to the ignore id), and the lookup doing it."""

    num_classes: int
    void_ids: tuple[int, ...] = ()
    lut: np.ndarray = field(init=False, repr=False, compare=False)  # raw id -> training id
    valid: np.ndarray = field(init=False, repr=False, compare=False)  # raw id -> allowed

    def __post_init__(self) -> None:
        lut = np.full(256, 0, np.uint8)
        valid = np.zeros(256, bool)
        lut[:self.num_classes] = np.arange(self.num_classes)
        valid[:self.num_classes] = True
        for void in (*self.void_ids, IGNORE_INDEX):
            lut[void], valid[void] = IGNORE_INDEX, True
        object.__setattr__(self, 'lut', lut)
        object.__setattr__(self, 'valid', valid)

    def describe(self) -> str:
        void = f', void {", ".join(map(str, self.void_ids))}' if self.void_ids else ''
        return f'classes 0..{self.num_classes - 1}{void}, ignore {IGNORE_INDEX}'

    def __call__(self, label: np.ndarray) -> np.ndarray:
        """Raw ids -> training ids (uint8), void -> ignore. Ids must have passed `check_samples`."""
        return self.lut[label]


def _read_label(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        if img.mode not in _LABEL_MODES:
            msg = (f'{path}: label image has mode {img.mode}; expected single-channel class ids '
                   '(convert colour-coded labels to ids first)')
            raise DatasetError(msg)
        return np.asarray(img)


def _check_sample(sample: Sample, label_map: LabelMap) -> None:
    try:
        with Image.open(sample.image) as img:
            width, height = img.size
    except OSError as err:
        msg = f'{sample.image}: unreadable image ({err})'
        raise DatasetError(msg) from None
    try:
        label = _read_label(sample.label)
    except OSError as err:
        msg = f'{sample.label}: unreadable label ({err})'
        raise DatasetError(msg) from None
    if label.shape != (height, width):
        msg = (f'{sample.label}: label is {label.shape[0]}x{label.shape[1]} (HxW) '
               f'but image {sample.image} is {height}x{width}')
        raise DatasetError(msg)
    ids = np.unique(label)
    bad = ids[(ids < 0) | (ids > 255) | ~label_map.valid[np.clip(ids, 0, 255)]]
    if bad.size:
        shown = ', '.join(str(int(v)) for v in bad[:8]) + (', ...' if bad.size > 8 else '')
        msg = f'{sample.label}: label ids {shown} out of range ({label_map.describe()})'
        raise DatasetError(msg)


def check_samples(samples: Sequence[Sample], label_map: LabelMap, desc: str = 'checking') -> None:
    """Open every pair once: readable, same size, label ids known. Run before training starts.

    Raises:
        DatasetError: the first bad file, named, with the problem.
    """
    for sample in tqdm(samples, desc=desc, unit='img', leave=False, dynamic_ncols=True):
        _check_sample(sample, label_map)


def label_histogram(samples: Sequence[Sample], label_map: LabelMap, desc: str = 'counting labels') -> np.ndarray:
    """Pixels per class over ``samples`` (void and ignore not counted), int64 of length ``num_classes``."""
    counts = np.zeros(256, np.int64)
    for sample in tqdm(samples, desc=desc, unit='img', leave=False, dynamic_ncols=True):
        counts += np.bincount(label_map(_read_label(sample.label)).ravel(), minlength=256)
    return counts[:label_map.num_classes]


# ------------------------------------------------------------------------------------------------------ dataset

class SegmentationDataset:
    """Map-style dataset: ``ds[i]`` or ``ds[(i, seed)]`` -> (3 x H x W float32 input, H x W uint8 label).

    Args:
        samples: checked image/label pairs.
        label_map: raw ids -> training ids.
        transform: augmentation taking (image, label, rng); None for evaluation (image as is).
    """

    def __init__(self, samples: Sequence[Sample], label_map: LabelMap, transform: Transform | None = None) -> None:
        self.samples = list(samples)
        self.label_map = label_map
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw pair: H x W x 3 uint8 RGB image and H x W uint8 training-id label."""
        sample = self.samples[index]
        with Image.open(sample.image) as img:
            image = np.asarray(img.convert('RGB'))
        return image, self.label_map(_read_label(sample.label))

    def __getitem__(self, key: int | tuple[int, Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        # The sampler sends (index, seed words): the augmentation is a function of the seed alone.
        index, seed = key if isinstance(key, tuple) else (key, (key,))
        image, label = self.load(index)
        if self.transform is not None:
            image, label = self.transform(image, label, np.random.default_rng(list(seed)))
        return to_input(image), label


class IterationBatches:
    """Batch sampler for ``iters`` steps: epoch-wise shuffles, full batches, each sample with its own seed.

    Batch ``it`` is a pure function of (seed, it): epoch ``e = it // (n // batch)`` uses the permutation drawn
    from (seed, e), and its samples carry the seed words (seed, e, position). Starting at ``start`` therefore
    continues an interrupted run exactly, with any number of loader workers.

    Distributed (torchrun), process ``rank`` of ``world`` takes its contiguous share of each global batch. The
    global batch is the same for any world size (the epoch permutation is seeded, not drawn per process as in
    torch's DistributedSampler, and no sample is padded in), so N processes see exactly the samples and
    augmentations of one process, and a run may resume with another world size.

    Args:
        num_samples: dataset length (>= batch_size).
        batch_size: samples per global batch; the last partial batch of an epoch is dropped.
        seed: run seed.
        start: first iteration to yield.
        stop: one past the last iteration.
        rank: this process's share of each batch (0-based).
        world: processes sharing each batch; must divide ``batch_size``.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0,
                 world: int = 1) -> None:
        if num_samples < batch_size:
            msg = f'{num_samples} training samples cannot fill a batch of {batch_size}'
            raise DatasetError(msg)
        if batch_size % world or not 0 <= rank < world:
            msg = f'a batch of {batch_size} has no equal share {rank} of {world}'
            raise DatasetError(msg)
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start, self.stop = start, stop
        self.rank, self.world = rank, world
        self.per_epoch = num_samples // batch_size
        self._epoch: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, tuple[int, int, int]]]]:
        for iteration in range(self.start, self.stop):
            yield self.batch(iteration)

    def batch(self, iteration: int) -> list[tuple[int, tuple[int, int, int]]]:
        """The (index, seed words) pairs of this process's share of one iteration."""
        epoch, step = divmod(iteration, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_samples))
        order = self._epoch[1]
        share = self.batch_size // self.world
        first = step * self.batch_size + self.rank * share
        return [(int(order[pos]), (self.seed, epoch, pos)) for pos in range(first, first + share)]
