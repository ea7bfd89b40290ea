"""The package's error root and the one-line rule. Plain Python: no torch, ORT or ROS.

Every exception the package raises on purpose derives from ``RtformerError`` (each module keeps its own subclass,
with the builtin it used to be as a second base, so ``except ValueError`` callers keep working). ``rtformer``
catches ``RtformerError`` in one place and prints its first line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ['RtformerError', 'first_line']


class RtformerError(Exception):
    """A known failure with a readable message that names the file, topic or option and the problem."""


def first_line(err: BaseException, limit: int | None = 200) -> str:
    """The first non-empty line of an exception's text (its type name when empty), at most ``limit`` characters
    (None: all of it).

    Library errors (torch, ONNX Runtime, OpenCV, rosbags) often span many lines; ours are one readable line.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(err).__name__
