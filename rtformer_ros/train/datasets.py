"""The torch side of the training data: a map-style dataset over checked samples and a resumable batch sampler.

Layouts, pairing, label reading and the data check are `rtformer_ros.datasets`, shared with bag-from-dataset.
NumPy only: torch's DataLoader takes any object with ``__len__``/``__getitem__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from rtformer_ros.datasets import DatasetError, LabelMap, Sample, read_image, read_label
from rtformer_ros.train.transforms import to_input

__all__ = ['IterationBatches', 'SegmentationDataset', 'Transform']

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


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
        return read_image(sample.image), self.label_map(read_label(sample.label))

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
