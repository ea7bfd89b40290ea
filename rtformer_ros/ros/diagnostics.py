"""Per-camera counters and timings, reported as ``diagnostic_msgs/DiagnosticStatus`` (~1 Hz on /diagnostics).

Counters and timing windows are updated from two threads (subscription callbacks and the worker), so every
access holds a lock; the hot path only appends a few floats.

Timings (ms) of a served frame, in pipeline order:

- ``wait``: from the subscription callback to the worker taking the frame;
- ``decode``: message -> 3-channel uint8 (rosbags-image);
- ``infer``: ``SegmentationEngine.infer`` (resize, ONNX Runtime, resize back);
- ``encode``: building the labels message;  ``publish``: publishing it;
- ``latency``: callback -> labels published (the sum of the above, measured once);
- ``extras``: colour/overlay/confidence/camera_info work after the labels went out (0 when nobody listens).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

__all__ = ['COUNTERS', 'TIMINGS', 'CameraStats']

COUNTERS = (
    'received',  # messages that reached a callback
    'served',  # frames segmented and published
    'dropped_stale',  # replaced by a newer frame before the worker got to them
    'dropped_malformed',  # failed validation or decoding
    'failed',  # inference errors
    'published_color', 'published_overlay', 'published_confidence', 'published_camera_info',
)
TIMINGS = ('latency', 'wait', 'decode', 'infer', 'encode', 'publish', 'extras')
_WINDOW = 300  # frames per percentile window: ~10 s at 30 fps


class CameraStats:
    """Thread-safe counters and recent timings of one camera."""

    def __init__(self, name: str) -> None:
        """Start empty.

        Args:
            name: the camera's topic prefix ('' for the plain single-camera topics), shown in reports.
        """
        self.name = name
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._timings: dict[str, deque[float]] = {key: deque(maxlen=_WINDOW) for key in TIMINGS}
        self._last_served = 0
        self._last_malformed = 0
        self._last_failed = 0
        self._last_time = time.monotonic()

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to ``counter`` (one of ``COUNTERS``)."""
        with self._lock:
            self._counts[counter] += n

    def record(self, timings_ms: dict[str, float]) -> None:
        """Append one served frame's timings (keys from ``TIMINGS``)."""
        with self._lock:
            for key, value in timings_ms.items():
                self._timings[key].append(value)

    def counts(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counts)

    def report(self, hardware_id: str, extra: Iterable[tuple[str, str]] = ()) -> DiagnosticStatus:
        """Status since the previous report: FPS, latency p50/p95, per-stage p50, counters, ``extra`` pairs.

        Level: ERROR if inference failed, WARN if malformed frames arrived since the last report, else OK.
        """
        now = time.monotonic()
        with self._lock:
            counts = dict(self._counts)
            timings = {key: np.asarray(values) for key, values in self._timings.items()}
            fps = (counts['served'] - self._last_served) / max(now - self._last_time, 1e-6)
            new_malformed = counts['dropped_malformed'] - self._last_malformed
            new_failed = counts['failed'] - self._last_failed
            self._last_served, self._last_time = counts['served'], now
            self._last_malformed, self._last_failed = counts['dropped_malformed'], counts['failed']

        def pct(key: str, q: float) -> str:
            values = timings[key]
            return f'{np.percentile(values, q):.2f}' if values.size else 'nan'

        values = [('fps', f'{fps:.2f}'), ('latency_ms_p50', pct('latency', 50)),
                  ('latency_ms_p95', pct('latency', 95))]
        values += [(f'{key}_ms_p50', pct(key, 50)) for key in TIMINGS if key != 'latency']
        values += [(key, str(value)) for key, value in counts.items()]
        values += list(extra)
        if new_failed:
            level, message = DiagnosticStatus.ERROR, f'{new_failed} frames failed inference'
        elif new_malformed:
            level, message = DiagnosticStatus.WARN, f'{new_malformed} malformed frames dropped'
        else:
            level, message = DiagnosticStatus.OK, f'{fps:.1f} fps, latency p50 {pct("latency", 50)} ms'
        return DiagnosticStatus(level=level, name=self.name, message=message, hardware_id=hardware_id,
                                values=[KeyValue(key=k, value=v) for k, v in values])
