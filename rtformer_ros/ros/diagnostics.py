"""Per-camera counters, timings and health, reported as ``diagnostic_msgs/DiagnosticStatus`` (~1 Hz).

Counters and timing windows are updated from two threads (subscription callbacks and the worker), so every
access holds a lock; the hot path only appends a few floats.

Timings (ms) of a served frame, in pipeline order:

- ``wait``: from the subscription callback to the worker taking the frame;
- ``decode``: message -> 3-channel uint8 (rosbags-image);
- ``infer``: ``SegmentationEngine.infer`` (resize, ONNX Runtime, resize back);
- ``encode``: building the labels message;  ``publish``: publishing it;
- ``latency``: callback -> labels published (the sum of the above, measured once);
- ``extras``: colour/overlay/confidence/camera_info work after the labels went out (0 when nobody listens).

Health, the level a robot can act on: ERROR after ``max_failures`` consecutive inference failures; WARN when
inference failed or malformed frames were dropped since the last report, when no frame arrived for
``stale_after`` s, when header stamps lag the node clock by more than ``max_stamp_lag`` s, or when the rolling
confidence statistics leave the out-of-domain band.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

__all__ = ['COUNTERS', 'TIMINGS', 'CameraStats', 'Limits', 'status_name']

COUNTERS = (
    'received',  # messages that reached a callback
    'served',  # frames segmented and published
    'dropped_stale',  # replaced by a newer frame before the worker got to them
    'dropped_malformed',  # failed validation or decoding
    'skipped',  # valid frames not segmented: no subscriber to any output, or enabled:=false
    'failed',  # inference errors
    'dropped_camera_info',  # camera_info too far from the image's stamp or of another size: not forwarded
    'published_color', 'published_overlay', 'published_confidence', 'published_camera_info',
    'published_color_compressed', 'published_overlay_compressed',
)
TIMINGS = ('latency', 'wait', 'decode', 'infer', 'encode', 'publish', 'extras')
_WINDOW = 300  # frames per percentile window: ~10 s at 30 fps


def status_name(node: str, camera: str = '') -> str:
    """The ``DiagnosticStatus.name`` of one camera: the node's fully qualified name and the camera's name
    (``image`` for the default, unnamed camera), e.g. ``/robot/rtformer_node: front``."""
    return f'{node}: {camera or "image"}'


class Limits(NamedTuple):
    """The health bounds of a report (the node's parameters of the same names)."""

    stale_after: float  # s without a frame -> WARN
    max_stamp_lag: float  # s between header stamps and the node clock -> WARN; 0: off
    ood_window: int  # frames in the rolling confidence statistics; 0: off
    ood_min_confidence: float  # rolling mean confidence below -> WARN
    ood_max_low_share: float  # rolling share of low-confidence pixels above -> WARN


class CameraStats:
    """Thread-safe counters and recent timings of one camera."""

    def __init__(self, name: str) -> None:
        """Start empty.

        Args:
            name: the status name (node and camera).
        """
        self.name = name
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._timings: dict[str, deque[float]] = {key: deque(maxlen=_WINDOW) for key in TIMINGS}
        self._last_served = 0
        self._last_malformed = 0
        self._last_failed = 0
        self._last_time = time.monotonic()
        self._last_frame = self._last_time  # staleness counts from the start until the first frame
        self._lag: float | None = None  # largest |stamp lag| (s) since the last report
        self._confidence: deque[tuple[float, float]] = deque(maxlen=1)  # (mean, low share) per frame

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to ``counter`` (one of ``COUNTERS``)."""
        with self._lock:
            self._counts[counter] += n

    def received(self, stamp_lag: float) -> None:
        """Count a message that reached the callback, ``stamp_lag`` s after its header stamp (node clock)."""
        with self._lock:
            self._counts['received'] += 1
            self._last_frame = time.monotonic()
            if self._lag is None or abs(stamp_lag) > abs(self._lag):
                self._lag = stamp_lag

    def record_confidence(self, mean: float, low_share: float, window: int) -> None:
        """Add one frame's mean confidence and share of low-confidence pixels to a window of ``window`` frames."""
        with self._lock:
            if self._confidence.maxlen != window:
                self._confidence = deque(self._confidence, maxlen=window)
            self._confidence.append((mean, low_share))

    def record(self, timings_ms: dict[str, float]) -> None:
        """Append one served frame's timings (keys from ``TIMINGS``)."""
        with self._lock:
            for key, value in timings_ms.items():
                self._timings[key].append(value)

    def counts(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counts)

    def report(self, hardware_id: str, limits: Limits, extra: Iterable[tuple[str, str]] = (),
               paused: bool = False, failing: bool = False) -> DiagnosticStatus:
        """Status since the previous report: FPS, latency p50/p95, per-stage p50, counters, health, ``extra``.

        Level: ERROR while ``failing`` (``max_failures`` consecutive inference failures); else WARN for each
        health problem (failed or malformed frames, stale input, stamp lag, confidence outside the band), joined
        in the message; else OK.
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
            silent = now - self._last_frame
            lag, self._lag = self._lag, None
            confidence = np.asarray(self._confidence).reshape(-1, 2)
            window_full = 0 < limits.ood_window == len(confidence)

        def pct(key: str, q: float) -> str:
            values = timings[key]
            return f'{np.percentile(values, q):.2f}' if values.size else 'nan'

        values = [('fps', f'{fps:.2f}'), ('latency_ms_p50', pct('latency', 50)),
                  ('latency_ms_p95', pct('latency', 95))]
        values += [(f'{key}_ms_p50', pct(key, 50)) for key in TIMINGS if key != 'latency']
        values += [(key, str(value)) for key, value in counts.items()]
        values += [('seconds_since_frame', f'{silent:.1f}'),
                   ('stamp_lag_s', 'nan' if lag is None else f'{lag:.3f}')]
        problems = []
        if silent > limits.stale_after:
            problems.append(f'no frame for {silent:.1f} s')
        if lag is not None and limits.max_stamp_lag > 0 and abs(lag) > limits.max_stamp_lag:
            problems.append(f'header stamps {"behind" if lag > 0 else "ahead of"} the node clock by {abs(lag):.1f} s '
                            '(use_sim_time?)')
        if new_failed:
            problems.insert(0, f'{new_failed} frames failed inference')
        if new_malformed:
            problems.append(f'{new_malformed} malformed frames dropped')
        if len(confidence) and limits.ood_window:  # a window left from before ood_window:=0 is not shown
            mean, low = confidence.mean(axis=0)
            values += [('mean_confidence', f'{mean:.3f}'), ('low_confidence_share', f'{low:.3f}'),
                       ('confidence_frames', str(len(confidence)))]
            if window_full and mean < limits.ood_min_confidence:
                problems.append(f'mean confidence {mean:.2f} below {limits.ood_min_confidence:.2f} (out of domain?)')
            if window_full and low > limits.ood_max_low_share:
                problems.append(f'low-confidence share {low:.2f} above {limits.ood_max_low_share:.2f} '
                                '(out of domain?)')
        values += list(extra)
        if failing:
            level, message = DiagnosticStatus.ERROR, '; '.join(['inference keeps failing', *problems])
        elif problems:
            level, message = DiagnosticStatus.WARN, '; '.join(problems)
        elif paused:
            level, message = DiagnosticStatus.OK, 'paused (enabled is false)'
        else:
            level, message = DiagnosticStatus.OK, f'{fps:.1f} fps, latency p50 {pct("latency", 50)} ms'
        return DiagnosticStatus(level=level, name=self.name, message=message, hardware_id=hardware_id,
                                values=[KeyValue(key=k, value=v) for k, v in values])
