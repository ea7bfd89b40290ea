"""Training augmentation keeps labels aligned with pixels, pads with the ignore id, and normalises like export."""

from __future__ import annotations

import numpy as np
import pytest

from rtformer_ros.classes import IGNORE_INDEX, get_classes
from rtformer_ros.metadata import IMAGENET_MEAN, IMAGENET_STD
from rtformer_ros.train.transforms import PAD_VALUE, ColorJitter, TrainTransform, scale_steps, to_input

PALETTE = np.asarray(get_classes('camvid').palette, np.uint8)


def coloured_scene(height: int = 96, width: int = 128, block: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of random classes; each pixel's colour is its class's palette colour (label = f(colour))."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, len(PALETTE), (height // block, width // block))
    label = np.kron(blocks, np.ones((block, block), np.int64)).astype(np.uint8)
    return PALETTE[label], label


def colour_agreement(image: np.ndarray, label: np.ndarray) -> float:
    """Share of labelled pixels whose colour is nearest to their label's palette colour.

    Bilinear resizing blends colours along block edges, but a blend is nearest to the side whose weight is
    larger, which is the side the nearest-neighbour label takes.
    """
    keep = label != IGNORE_INDEX
    dist = ((image[keep][:, None].astype(int) - PALETTE[None].astype(int)) ** 2).sum(axis=-1)
    return float((dist.argmin(axis=1) == label[keep]).mean())


def shifted_agreement(image: np.ndarray, label: np.ndarray) -> float:
    """Best agreement when the label is off by one pixel in any direction."""
    return max(colour_agreement(image[1:], label[:-1]), colour_agreement(image[:-1], label[1:]),
               colour_agreement(image[:, 1:], label[:, :-1]), colour_agreement(image[:, :-1], label[:, 1:]))


def test_scale_steps_match_paddleseg_linspace() -> None:
    assert scale_steps(0.5, 2.0, 0.25) == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    assert scale_steps(1.0, 1.0, 0.25) == (1.0,)


@pytest.mark.parametrize('seed', range(12))
def test_label_stays_aligned_under_scale_crop_flip(seed: int) -> None:
    image, label = coloured_scene(seed=seed)
    out_image, out_label = TrainTransform((80, 112), jitter=None)(image, label, np.random.default_rng(seed))
    assert out_image.shape == (80, 112, 3) and out_label.shape == (80, 112)
    assert out_image.dtype == np.uint8 and out_label.dtype == np.uint8
    agreement = colour_agreement(out_image, out_label)
    assert agreement > 0.93  # a flipped or mis-cropped label agrees on ~0.2
    assert agreement > shifted_agreement(out_image, out_label)  # even one pixel off is worse


def test_flip_mirrors_image_and_label_together() -> None:
    image, label = coloured_scene(seed=3)
    flipped = [TrainTransform((96, 128), scales=(1.0,), jitter=None)(image, label, np.random.default_rng(s))
               for s in range(16)]
    mirrored = [f for f in flipped if np.array_equal(f[1], label[:, ::-1])]
    assert 0 < len(mirrored) < len(flipped)  # flip p=0.5 happened sometimes, not always
    for out_image, _ in mirrored:
        np.testing.assert_array_equal(out_image, image[:, ::-1])


def test_crop_larger_than_image_pads_label_with_ignore_and_image_with_grey() -> None:
    image, label = coloured_scene(64, 96, block=16)
    out_image, out_label = TrainTransform((80, 128), scales=(1.0,), flip=False, jitter=None)(
        image, label, np.random.default_rng(0))
    np.testing.assert_array_equal(out_label[:64, :96], label)  # padding goes bottom/right: no offset left
    assert (out_label[64:] == IGNORE_INDEX).all() and (out_label[:, 96:] == IGNORE_INDEX).all()
    assert (out_image[64:] == PAD_VALUE).all() and (out_image[:, 96:] == PAD_VALUE).all()


def test_downscale_to_half_pads_the_rest() -> None:
    image, label = coloured_scene(96, 128)
    out_image, out_label = TrainTransform((96, 128), scales=(0.5,), jitter=None)(image, label,
                                                                                np.random.default_rng(1))
    assert (out_label == IGNORE_INDEX).mean() == pytest.approx(0.75)
    np.testing.assert_array_equal(out_label == IGNORE_INDEX, (out_image == PAD_VALUE).all(axis=2))
    assert colour_agreement(out_image, out_label) > 0.99  # 0.5 of 8-px blocks on even pixels: no blending


def test_colour_jitter_changes_colours_only() -> None:
    image, label = coloured_scene(seed=5)
    jitter = ColorJitter(prob=1.0)
    out = jitter(image, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    np.testing.assert_array_equal(ColorJitter(prob=0.0)(image, np.random.default_rng(0)), image)
    _, out_label = TrainTransform((96, 128), scales=(1.0,), flip=False, jitter=jitter)(
        image, label, np.random.default_rng(0))
    np.testing.assert_array_equal(out_label, label)


def test_to_input_is_imagenet_normalised_chw() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 128
    x = to_input(image)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    np.testing.assert_allclose(x[:, 0, 0], expected, rtol=1e-5)
