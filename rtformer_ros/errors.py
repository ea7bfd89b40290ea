"""Helpers shared by every module's own error class. Plain Python: no torch, ORT or ROS."""

from __future__ import annotations

__all__ = ['first_line']


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text (its type name when empty), at most ``limit`` characters.

    Library errors (torch, ONNX Runtime, rosbags) often span many lines; ours are one readable line.
    """
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
