"""The node's outputs matched, by stamp, to the frames the demo sent; the names of the demo's topics.

Imports only the standard library and numpy; the codec and probe helpers load when the first message arrives.
"""

from __future__ import annotations

import threading
import time
from typing import Any, NamedTuple

import numpy as np

__all__ = ['IMAGE_TOPIC', 'NAMESPACE', 'OUTPUTS', 'Answer', 'Collector']

NAMESPACE = '/camera'
IMAGE_TOPIC = f'{NAMESPACE}/image'
STATUS_NAME = f'{NAMESPACE}/rtformer_node: image'  # the node's DiagnosticStatus: its full name and camera
OUTPUTS = ('labels', 'color', 'overlay')  # node topics recorded (colour and overlay exist only while subscribed)


class Answer(NamedTuple):
    """All outputs of one frame."""

    stamp_ns: int
    labels: np.ndarray  # (H, W) class ids
    color: np.ndarray  # (H, W, 3) RGB
    overlay: np.ndarray  # (H, W, 3) RGB
    latency_ms: float  # publish -> labels received


class Collector:
    """The node's outputs by stamp, for the frames this demo sent. Callbacks run on the probe's executor thread
    and only keep references; everything else happens in the main thread."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sent_at: dict[int, float] = {}  # stamp -> time.monotonic() of its first publish
        self._labels_at: dict[int, float] = {}
        self._parts: dict[int, dict[str, np.ndarray]] = {}
        self._done: dict[int, Answer] = {}
        self.diagnostics: dict[str, str] | None = None

    def expect(self, stamp: int) -> None:
        """Collect the outputs of ``stamp`` from now on (call before publishing it)."""
        with self._changed:
            self._sent_at.setdefault(stamp, time.monotonic())

    def on_output(self, kind: str, msg: Any) -> None:
        """Subscription callback of output ``kind`` (one of ``OUTPUTS``)."""
        from rtformer_ros.image.codec import decode_image, decode_labels

        now = time.monotonic()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._changed:
            if stamp not in self._sent_at or stamp in self._done:
                return  # not ours, or a resent frame answered twice
            parts = self._parts.setdefault(stamp, {})
            parts[kind] = decode_labels(msg) if kind == 'labels' else decode_image(msg).rgb()
            if kind == 'labels':
                self._labels_at[stamp] = now
            if len(parts) == len(OUTPUTS):
                del self._parts[stamp]
                latency = (self._labels_at.pop(stamp) - self._sent_at[stamp]) * 1e3
                self._done[stamp] = Answer(stamp, parts['labels'], parts['color'], parts['overlay'], latency)
                self._changed.notify_all()

    def on_diagnostics(self, msg: Any) -> None:
        """Keep the latest status of the node's camera."""
        from rtformer_ros.ros.probe import diagnostic_values

        values = diagnostic_values(msg, STATUS_NAME)
        if values is not None and values.get('input_topic') == IMAGE_TOPIC:
            with self._changed:
                self.diagnostics = values
                self._changed.notify_all()

    def wait(self, stamp: int, timeout: float) -> bool:
        """Wait until all outputs of ``stamp`` are in; False after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: stamp in self._done, timeout)

    def wait_served(self, served: int, timeout: float) -> dict[str, str] | None:
        """The node's latest diagnostics, waiting up to ``timeout`` s for one counting ``served`` frames."""
        with self._changed:
            self._changed.wait_for(lambda: self.diagnostics is not None
                                   and int(self.diagnostics.get('served', 0)) >= served, timeout)
            return self.diagnostics

    def pop_done(self) -> list[Answer]:
        """Answers complete so far, oldest first; forgets the frames before them (the node dropped those)."""
        with self._changed:
            answers = [self._done.pop(stamp) for stamp in sorted(self._done)]
            if answers:
                newest = answers[-1].stamp_ns
                for table in (self._sent_at, self._labels_at, self._parts):
                    for stamp in [s for s in table if s <= newest]:
                        del table[stamp]
            return answers
