"""Training augmentation and input normalisation, after PaddleSeg's RTFormer pipeline.

Order (PaddleSeg configs): random step scaling -> pad-crop -> horizontal flip -> photometric distortion ->
ImageNet normalisation. Images are H x W x 3 uint8 RGB, labels H x W uint8 class ids, until `to_input`.
Every random draw comes from the generator passed in, so a sample's augmentation depends only on its seed
(not on worker processes), which is what makes ``--resume`` reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from rtformer_ros.classes import IGNORE_INDEX
from rtformer_ros.metadata import IMAGENET_MEAN, IMAGENET_STD

__all__ = ['PAD_VALUE', 'ColorJitter', 'TrainTransform', 'pad_crop', 'random_scale', 'scale_steps', 'to_input']

PAD_VALUE = 127
"""Image padding: PaddleSeg pads with 127.5, which its uint8 cast in RandomDistort truncates to 127."""

_MEAN = np.asarray(IMAGENET_MEAN, np.float32) * 255
_INV_STD = 1 / (np.asarray(IMAGENET_STD, np.float32) * 255)


def scale_steps(lo: float, hi: float, step: float) -> tuple[float, ...]:
    """The scales ``lo, lo+step, ..., hi`` (PaddleSeg ResizeStepScaling's linspace)."""
    count = int(round((hi - lo) / step)) + 1 if hi > lo else 1
    return tuple(float(v) for v in np.linspace(lo, hi, count))


def random_scale(image: np.ndarray, label: np.ndarray, scales: tuple[float, ...],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resize both by one scale drawn from ``scales``: image bilinear, label nearest."""
    scale = scales[rng.integers(len(scales))]
    if scale == 1.0:
        return image, label
    height, width = label.shape
    size = (int(round(width * scale)), int(round(height * scale)))  # cv2 wants (W, H)
    return (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(label, size, interpolation=cv2.INTER_NEAREST))


def pad_crop(image: np.ndarray, label: np.ndarray, crop: tuple[int, int],
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right up to ``crop`` (image `PAD_VALUE`, label ignore), then cut a random ``crop`` (H, W)."""
    crop_h, crop_w = crop
    height, width = label.shape
    pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
        label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
        height, width = label.shape
    top = int(rng.integers(height - crop_h + 1))
    left = int(rng.integers(width - crop_w + 1))
    return image[top:top + crop_h, left:left + crop_w], label[top:top + crop_h, left:left + crop_w]


@dataclass(frozen=True)
class ColorJitter:
    """PaddleSeg RandomDistort: each op with probability ``prob``, in random order, through PIL.

    Args:
        brightness: factor drawn from 1 +- this (PIL ImageEnhance.Brightness).
        contrast: factor drawn from 1 +- this.
        saturation: factor drawn from 1 +- this (ImageEnhance.Color).
        hue: shift drawn from +- this, in PIL's 0..255 hue units (full circle = 256), as PaddleSeg adds it;
            18 is about +-25 degrees.
        prob: probability of each op.
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 18.0
    prob: float = 0.5

    def scaled(self, strength: float) -> ColorJitter:
        """The same jitter with every spread multiplied by ``strength`` (factors stay positive)."""
        return replace(self, brightness=min(self.brightness * strength, 0.95),
                       contrast=min(self.contrast * strength, 0.95),
                       saturation=min(self.saturation * strength, 0.95), hue=self.hue * strength)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        enhancers = {'brightness': (ImageEnhance.Brightness, self.brightness),
                     'contrast': (ImageEnhance.Contrast, self.contrast),
                     'saturation': (ImageEnhance.Color, self.saturation)}
        ops = ['brightness', 'contrast', 'saturation', 'hue']
        pil = Image.fromarray(image)
        for index in rng.permutation(len(ops)):
            if rng.random() >= self.prob:
                continue
            op = ops[index]
            if op == 'hue':
                hsv = np.asarray(pil.convert('HSV')).copy()
                shift = rng.uniform(-self.hue, self.hue)
                hsv[..., 0] = np.mod(hsv[..., 0] + shift, 256).astype(np.uint8)  # hue is circular
                pil = Image.fromarray(hsv, mode='HSV').convert('RGB')
            else:
                enhancer, spread = enhancers[op]
                pil = enhancer(pil).enhance(rng.uniform(1 - spread, 1 + spread))
        return np.asarray(pil)


@dataclass(frozen=True)
class TrainTransform:
    """The training augmentation: scale, pad-crop, flip, colour jitter (uint8 in, uint8 out).

    Args:
        crop: output (H, W).
        scales: candidate scale factors, one drawn per sample.
        flip: horizontal flip with probability 0.5.
        jitter: photometric distortion, or None for none.
        blur: probability of a Gaussian blur with sigma drawn from 0.3..1.5 pixels.
    """

    crop: tuple[int, int]
    scales: tuple[float, ...] = scale_steps(0.5, 2.0, 0.25)
    flip: bool = True
    jitter: ColorJitter | None = ColorJitter()
    blur: float = 0.0

    def __call__(self, image: np.ndarray, label: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image, label = random_scale(image, label, self.scales, rng)
        image, label = pad_crop(image, label, self.crop, rng)
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        if self.jitter is not None:
            image = self.jitter(np.ascontiguousarray(image), rng)
        # Drawn only when enabled, so recipes without blur keep their exact random stream.
        if self.blur > 0 and rng.random() < self.blur:
            image = cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), rng.uniform(0.3, 1.5))
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


def to_input(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> 3 x H x W float32, ``(x/255 - mean)/std`` with ImageNet statistics."""
    return np.ascontiguousarray(((image.astype(np.float32) - _MEAN) * _INV_STD).transpose(2, 0, 1))
