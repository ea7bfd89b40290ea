"""One demo run: start ``rtformer_node``, feed it the source through a ``StampedClient`` (lockstep or realtime)
and record its answers. Imports rclpy: ``command.run`` loads this module once ROS 2 is known to be there."""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from rtformer_ros.demo.command import DemoError
from rtformer_ros.demo.outputs import Recording, write_summary
from rtformer_ros.demo.sources import open_source
from rtformer_ros.image.codec import decode_image, decode_labels, image_message
from rtformer_ros.models import ModelNotFoundError, default_model, resolve_model
from rtformer_ros.ros.client import (
    LATCHED_QOS,
    ClientError,
    NodeProcess,
    StampedClient,
    diagnostic_values,
    stamp_msg,
    status_name,
)
from rtformer_ros.util import NS_PER_S, progress

__all__ = ['run_demo']

NAMESPACE = '/camera'
IMAGE_TOPIC = f'{NAMESPACE}/image'
STATUS_NAME = status_name(f'{NAMESPACE}/rtformer_node')  # the node's DiagnosticStatus for its one camera
OUTPUTS = ('labels', 'color', 'overlay')  # colour and overlay exist only while subscribed
MAX_MISSES = 3  # lockstep: frames in a row without outputs before the demo gives up
WARM_UP_STAMP = (2**31 - 1) * NS_PER_S  # the last second a header stamp holds: no video or bag frame carries it


def _resolve_model(model: str | None) -> Path:
    """The model file; None: the node's default for this machine (a shipped CamVid model)."""
    try:
        return resolve_model(model or default_model()).resolve()
    except ModelNotFoundError as err:
        hint = ' (e.g. from: rtformer export CKPT -o FILE.onnx --size 360x480)' if model is None else ''
        raise DemoError(f'{err}; pass --model FILE.onnx{hint}') from None


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Run the node on the video and write the files; the summary (also written to ``summary.json``).

    Raises:
        DemoError: no video or model, the node fails to start, or no frame comes back.
        ClientError: the node exited, or ``MAX_MISSES`` frames in a row got no outputs.
    """
    model = _resolve_model(args.model)
    source = open_source(args.video, args.bag, args.image_topic, args.max_frames)
    args.out.mkdir(parents=True, exist_ok=True)
    recording = Recording(args.out, source)
    print(f'rtformer demo: {source.name} ({source.width}x{source.height}, {source.fps:g} fps, '
          f'{source.frames or "?"} frames) -> rtformer_node ({model.name}, providers {args.providers}) on '
          f'{IMAGE_TOPIC}', flush=True)
    start = time.monotonic()
    try:
        with NodeProcess(params={'model': str(model), 'providers': args.providers},
                         ros_args=['-r', f'__ns:={NAMESPACE}']) as node:
            with StampedClient('rtformer_demo', node, MAX_MISSES) as client:
                session = _Session(client, args, recording)
                first = next(source.feed)
                class_info = session.warm_up(first[2])
                feed_start = time.monotonic()
                with progress(total=source.frames or None, desc='demo', unit='frame', enabled=args.progress) as bar:
                    session.feed(itertools.chain([first], source.feed), bar)
                feed_s = time.monotonic() - feed_start
                diagnostics = session.diagnostics()
            node_exit = node.stop()
    finally:
        source.close()
        recording.close()
    if not recording.latencies_ms:
        msg = f'rtformer_node answered none of the {session.sent} frames sent'
        raise DemoError(msg)
    return write_summary(args, model, recording, class_info, diagnostics, session.sent, feed_s,
                         time.monotonic() - start, node_exit)


def _message(stamp: int, bgr: np.ndarray) -> Image:
    return image_message(Header(stamp=stamp_msg(stamp), frame_id='camera'), bgr, 'bgr8')


class _Session:
    """The demo's topics on the client: frames out, answers decoded into the recording (main thread only)."""

    def __init__(self, client: StampedClient, args: argparse.Namespace, recording: Recording) -> None:
        self.client, self.args, self.recording = client, args, recording
        self.outputs = [client.subscribe(Image, f'{NAMESPACE}/segmentation/{kind}', history=False) for kind in OUTPUTS]
        self.status = client.subscribe(DiagnosticArray, '/diagnostics', 10)
        self.class_info = client.subscribe(String, f'{NAMESPACE}/segmentation/class_info', LATCHED_QOS)
        self.publisher = client.publisher(Image, IMAGE_TOPIC)
        self.inputs: dict[int, tuple[int, np.ndarray]] = {}  # stamp -> (index, BGR) of frames not yet answered
        self.sent = 0
        if not client.wait_on(lambda: client.peers_ready(self.publisher, self.outputs), args.wait):
            msg = f'rtformer_node did not subscribe {IMAGE_TOPIC} within {args.wait:g} s'
            raise DemoError(msg)

    def warm_up(self, bgr: np.ndarray) -> dict[str, Any]:
        """Send ``bgr`` under a stamp outside the video's until all outputs come back (riding out the node's
        discovery of our subscriptions, and its first, slow inference); the node's class_info."""
        stamp = WARM_UP_STAMP
        if not self.client.lockstep(self.publisher, stamp, _message(stamp, bgr), self.outputs, self.args.wait):
            msg = f'rtformer_node did not answer a first frame within {self.args.wait:g} s'
            raise DemoError(msg)
        try:
            return json.loads(self.class_info.wait_for(timeout=self.args.wait).data)
        except ClientError:
            msg = f'no class_info from rtformer_node within {self.args.wait:g} s'
            raise DemoError(msg) from None

    def feed(self, frames: Iterable[tuple[int, int, np.ndarray]], bar: Any) -> None:
        """Send every frame (lockstep, or at the video's rate) and record the answers."""
        def stamped() -> Iterator[tuple[float, int, Any]]:  # (due s, stamp, message); inputs kept for _drain
            first = None
            for index, stamp, bgr in frames:
                first = stamp if first is None else first
                self.inputs[stamp] = (index, bgr)
                self.sent += 1
                yield (stamp - first) / 1e9, stamp, _message(stamp, bgr)

        if self.args.realtime:
            for _ in self.client.timed(self.publisher, stamped()):
                self._drain(bar)
            if self.inputs:  # the last frame, unanswered yet, is never replaced: the node serves it
                self.client.wait([max(self.inputs)], self.outputs, self.args.timeout)
        else:
            for _, stamp, msg in stamped():
                if not self.client.lockstep(self.publisher, stamp, msg, self.outputs, self.args.timeout):
                    bar.write(f'rtformer demo: frame {self.inputs.pop(stamp)[0]}: no outputs within '
                              f'{self.args.timeout:g} s')
                self._drain(bar)
        self._drain(bar)

    def _drain(self, bar: Any) -> None:
        """Record the frames whose outputs are all in, oldest first; forget older ones (the node dropped them)."""
        with self.client.changed:
            done = sorted(s for s in self.inputs if all(inbox.answered(s) for inbox in self.outputs))
        for stamp in done:
            for older in [s for s in self.inputs if s < stamp]:  # served in order: no outputs will come for these
                del self.inputs[older]
            index, bgr = self.inputs.pop(stamp)
            (received, labels), (_, color), (_, overlay) = (inbox.take([stamp])[stamp] for inbox in self.outputs)
            self.recording.add(index, bgr, decode_labels(labels), decode_image(color).rgb(),
                               decode_image(overlay).rgb(), (received - self.client.sent[stamp]) / 1e6)
            bar.update(1)

    def diagnostics(self) -> dict[str, str]:
        """The node's last status of our camera, once it counts every frame served for the demo (or after 3 s)."""
        def latest() -> dict[str, str]:
            found = (diagnostic_values(msg, STATUS_NAME) for msg in reversed(self.status.messages))
            return next((values for values in found if values is not None), {})

        served = 1 + len(self.recording.latencies_ms)  # the warm-up frame too
        self.client.wait_on(lambda: int(latest().get('served', 0)) >= served, 3.0)
        return latest()
