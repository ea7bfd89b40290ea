"""Label maps to pictures: palette colouring and the overlay, with OpenCV tables (no per-pixel Python).

``cv2.LUT`` on the 3-channel replicated label map is ~3x faster than numpy fancy indexing at 1024x2048.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ['blend', 'colorize', 'palette_lut']


def palette_lut(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A (256, 1, 3) uint8 table: class id -> RGB; ids without a colour (ignore, 255) stay black."""
    lut = np.zeros((256, 1, 3), np.uint8)
    lut[:len(palette), 0] = np.asarray(palette, np.uint8).reshape(-1, 3)
    return lut


def colorize(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids -> (H, W, 3) uint8 RGB picture through ``lut`` from ``palette_lut``."""
    return cv2.LUT(cv2.cvtColor(labels, cv2.COLOR_GRAY2RGB), lut)


def blend(rgb: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * rgb + alpha * color``, rounded to uint8 (alpha in [0, 1])."""
    return cv2.addWeighted(rgb, 1.0 - alpha, color, alpha, 0.0)
