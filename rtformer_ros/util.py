"""Small ROS-free helpers written once: ``HxW`` sizes, header stamps as integers, progress bars.

Stamps are carried as integer nanoseconds everywhere (a dict key that is exact, unlike float seconds); anything
with ``sec`` and ``nanosec`` (rclpy's builtin_interfaces/Time, rosbags' deserialised one) converts to it.
"""

from __future__ import annotations

import argparse
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = ['NS_PER_S', 'Stamp', 'cache_dir', 'format_stamp', 'header_stamp_ns', 'hw_arg', 'parse_hw', 'progress',
           'split_ns', 'stamp_ns']

NS_PER_S = 1_000_000_000
T = TypeVar('T')


class Stamp(Protocol):
    """builtin_interfaces/Time as both rclpy and rosbags spell it."""

    sec: int
    nanosec: int


def stamp_ns(stamp: Stamp) -> int:
    """A header stamp as integer nanoseconds."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def header_stamp_ns(raw: bytes | memoryview) -> int | None:
    """The ``header.stamp`` (ns) of a CDR-serialised message that starts with a ``std_msgs/Header``, read without
    deserialising it (bags, raw subscriptions); None when it is too short to hold one (4 bytes of encapsulation,
    8 of stamp): a corrupt message."""
    if len(raw) < 12:
        return None
    # Encapsulation kind in byte 1: odd = little endian (CDR_LE 0x01, PL_CDR_LE 0x03, CDR2_LE 0x07 ...).
    sec, nanosec = struct.unpack_from('<iI' if raw[1] & 1 else '>iI', raw, 4)
    return sec * NS_PER_S + nanosec


def split_ns(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> ``(sec, nanosec)`` for a message's stamp."""
    return divmod(int(ns), NS_PER_S)


def format_stamp(ns: int) -> str:
    """Integer nanoseconds as ``sec.nanosec`` with all nine digits (exact, unlike a float)."""
    sec, nanosec = split_ns(ns)
    return f'{sec}.{nanosec:09d}'


def parse_hw(text: str, minimum: int = 1) -> tuple[int, int]:
    """``'360x480'`` -> (360, 480).

    Raises:
        ValueError: not two integers joined by ``x``, or a side below ``minimum``.
    """
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        msg = f'size {text!r}: expected HxW, e.g. 360x480'
        raise ValueError(msg) from None
    if min(height, width) < minimum:
        msg = f'size {text!r}: H and W must be >= {minimum}'
        raise ValueError(msg)
    return height, width


def hw_arg(minimum: int = 1) -> Any:
    """An argparse ``type=`` for HxW options: parse_hw with its message as the usage error."""
    def parse(text: str) -> tuple[int, int]:
        try:
            return parse_hw(text, minimum)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = 'HxW'  # argparse names the type in "invalid HxW value"
    return parse


def progress(iterable: Iterable[T] | None = None, *, enabled: bool | None = None, **kwargs: Any) -> Any:
    """A tqdm bar; ``enabled`` None: only on a terminal (tqdm's own rule) unless ``TQDM_DISABLE`` is set,
    True/False: always/never.

    ``--progress/--no-progress`` options map onto ``enabled`` directly. TQDM_DISABLE is read here because an
    explicit ``disable`` argument overrides tqdm's own reading of it (torchrun's ranks > 0 set it).
    """
    from tqdm import tqdm

    kwargs.setdefault('dynamic_ncols', True)
    if enabled is None:
        disable = True if os.environ.get('TQDM_DISABLE', '').lower() in ('1', 'true', 'yes') else None
    else:
        disable = not enabled
    return tqdm(iterable, disable=disable, **kwargs)


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/rtformer_ros/<parts>`` (default ``~/.cache/rtformer_ros/...``); not created here."""
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base, 'rtformer_ros', *parts)
