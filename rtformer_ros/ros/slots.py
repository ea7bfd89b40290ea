"""Latest-frame hand-off between subscription callbacks and the single inference worker.

One slot per camera holds at most one pending frame. ``put`` never waits: a newer frame replaces the pending
one (the caller counts it as stale), so nothing can queue up however slow inference is. ``take`` serves the
cameras that have a frame in round-robin order, so a fast camera cannot starve a slow one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ['LatestFrameSlots']

T = TypeVar('T')


class LatestFrameSlots(Generic[T]):
    """Per-key single-item mailboxes with fair, blocking ``take``."""

    def __init__(self, keys: Sequence[str]) -> None:
        """Create empty slots.

        Args:
            keys: one slot per key (camera names), served in this order.
        """
        assert keys and len(set(keys)) == len(keys), keys
        self._keys = tuple(keys)
        self._pending: dict[str, T | None] = dict.fromkeys(self._keys)
        self._next = 0  # index where the next round-robin scan starts
        self._closed = False
        self._ready = threading.Condition(threading.Lock())

    def put(self, key: str, item: T) -> T | None:
        """Store ``item`` as the pending frame of ``key``; returns the frame it replaced (now stale), if any."""
        with self._ready:
            replaced = self._pending[key]
            self._pending[key] = item
            self._ready.notify()
        return replaced

    def take(self, timeout: float | None = None) -> tuple[str, T] | None:
        """Wait for a pending frame and remove it, fairly across keys.

        Args:
            timeout: seconds to wait; None waits until a frame arrives or ``close`` is called.

        Returns:
            (key, item), or None on timeout or once closed.
        """
        with self._ready:
            while not self._closed:
                count = len(self._keys)
                for offset in range(count):
                    index = (self._next + offset) % count
                    key = self._keys[index]
                    item = self._pending[key]
                    if item is not None:
                        self._pending[key] = None
                        self._next = (index + 1) % count
                        return key, item
                if not self._ready.wait(timeout):
                    return None
            return None

    def close(self) -> None:
        """Wake every ``take`` and make it return None from now on; pending frames are dropped."""
        with self._ready:
            self._closed = True
            self._pending = dict.fromkeys(self._keys)
            self._ready.notify_all()
