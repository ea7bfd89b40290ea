"""One demo run: start ``rtformer_node``, feed it the source (lockstep or realtime) and record its answers.

The node and the demo's client share one DDS environment, with Fast DDS's large-data transports (see the
package's docstring, "Transport"). rclpy, OpenCV and the node's modules are imported when a run starts.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rtformer_ros.demo.collector import IMAGE_TOPIC, NAMESPACE, OUTPUTS, Collector
from rtformer_ros.demo.errors import DemoError
from rtformer_ros.demo.options import DemoOptions
from rtformer_ros.demo.outputs import Recording, sheet_frames
from rtformer_ros.demo.sources import BagSource, Source, VideoSource
from rtformer_ros.demo.summary import write_summary
from rtformer_ros.demo.video import fetch_vtest

__all__ = ['run_demo']

FRAME_ID = 'camera'
RESEND_S = 2.0  # lockstep: publish a frame again after this long without its outputs
MAX_MISSES = 3  # lockstep: frames in a row without outputs before the demo gives up


def _resolve_model(model: str | None) -> Path:
    """The model file; None: the node's default (the shipped CamVid model)."""
    from rtformer_ros.models import ModelNotFoundError, default_model, resolve_model

    default = default_model()
    model = model or default
    try:
        return resolve_model(model).resolve()
    except ModelNotFoundError as err:
        if model == default:
            msg = (f'model {model} is not installed ({err}); pass --model FILE.onnx '
                   f'(e.g. from: rtformer export CKPT -o FILE.onnx --size 360x480)')
        else:
            msg = f'{err}; pass --model FILE.onnx'
        raise DemoError(msg) from None


def _dds_environment() -> dict[str, str]:
    """This process's environment plus the Fast DDS transports that carry >512 KB best-effort frames."""
    env = dict(os.environ)
    if env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp').startswith('rmw_fastrtps'):
        env.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
    return env


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` = ``env`` inside the block (DDS reads it when a participant is created), restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _open_source(opts: DemoOptions) -> Source:
    if opts.video is not None and opts.bag is not None:
        msg = 'pass either --video or --bag, not both'
        raise DemoError(msg)
    if opts.bag is not None:
        return BagSource(opts.bag, opts.image_topic, opts.max_frames)
    if opts.video is not None:
        return VideoSource(opts.video, opts.max_frames)
    try:
        video = fetch_vtest()
    except DemoError as err:
        msg = f'no demo video: {err}; pass --video FILE (any video OpenCV reads) or --bag BAG'
        raise DemoError(msg) from None
    return VideoSource(video, opts.max_frames)


def _node_failure(node: Any) -> str:
    node.wait(5)
    lines = [line.strip() for line in node.output.splitlines() if line.strip()]
    return f'rtformer_node exited with code {node.process.returncode}: {lines[-1] if lines else "no output"}'


class _Session:
    """The node process and the demo's rclpy client (a ``Probe``): frames out, outputs into the recording.

    Args:
        node: the running ``NodeProcess``.
        probe: the demo's client, created under the same DDS environment as the node.
        opts: the demo's options.
        recording: where answered frames go.
    """

    def __init__(self, node: Any, probe: Any, opts: DemoOptions, recording: Recording) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from rtformer_ros.ros.qos import LATCHED_QOS, OUTPUT_QOS

        self.node, self.probe, self.opts, self.recording = node, probe, opts, recording
        self.collector = Collector()
        self.inputs: dict[int, tuple[int, np.ndarray]] = {}  # stamp -> (index, BGR) of frames not yet answered
        self.sent = 0
        self.warmups = 0
        # Labels deep enough for a burst of answers; colour and overlay as the node publishes them.
        labels_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)
        self.subscriptions = [probe.node.create_subscription(
            Image, f'{NAMESPACE}/segmentation/{kind}', lambda msg, kind=kind: self.collector.on_output(kind, msg),
            labels_qos if kind == 'labels' else OUTPUT_QOS) for kind in OUTPUTS]
        probe.node.create_subscription(DiagnosticArray, '/diagnostics', self.collector.on_diagnostics, 10)
        self.class_info = probe.subscribe(String, f'{NAMESPACE}/segmentation/class_info', LATCHED_QOS)
        # Reliable frames (depth 1: never a queue of old frames) reach the node's best-effort subscription too.
        frame_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.VOLATILE)
        self.publisher = probe.publisher(Image, IMAGE_TOPIC, frame_qos)

    def wait_ready(self) -> None:
        """Until the node's image subscription and output publishers are matched; fails fast if it exits."""
        deadline = time.monotonic() + self.opts.wait_s
        while not (self.publisher.get_subscription_count() > 0
                   and all(sub.get_publisher_count() > 0 for sub in self.subscriptions)):
            if not self.node.alive():
                raise DemoError(_node_failure(self.node))
            if time.monotonic() > deadline:
                msg = f'rtformer_node did not subscribe {IMAGE_TOPIC} within {self.opts.wait_s:g} s'
                raise DemoError(msg)
            time.sleep(0.05)

    def publish(self, stamp_ns: int, bgr: np.ndarray) -> None:
        """One bgr8 frame with header stamp ``stamp_ns``."""
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from rtformer_ros.image.codec import image_message

        stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        self.publisher.publish(image_message(Header(stamp=stamp, frame_id=FRAME_ID), bgr, 'bgr8'))

    def exchange(self, stamp_ns: int, bgr: np.ndarray, timeout: float) -> bool:
        """Publish and wait for all outputs, resending now and then (a lost best-effort sample)."""
        self.collector.expect(stamp_ns)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish(stamp_ns, bgr)
            if self.collector.wait(stamp_ns, min(RESEND_S, deadline - time.monotonic())):
                return True
            if not self.node.alive():
                raise DemoError(_node_failure(self.node))
        return False

    def warm_up(self, bgr: np.ndarray) -> dict[str, Any]:
        """Send ``bgr`` with a stamp outside the video's until all outputs come back; the node's class_info.

        Rides out discovery of the demo's subscriptions (the node makes colour and overlay only once it sees
        them) and the first, slow inference.
        """
        from rtformer_ros.ros.probe import ProbeError

        stamp = self.probe.next_stamp()
        self.warmups += 1
        if not self.exchange(stamp.sec * 1_000_000_000 + stamp.nanosec, bgr, self.opts.wait_s):
            msg = f'rtformer_node did not answer a first frame within {self.opts.wait_s:g} s'
            raise DemoError(msg)
        self.collector.pop_done()
        try:
            return json.loads(self.class_info.wait_for(timeout=self.opts.wait_s).data)
        except ProbeError:
            msg = f'no class_info from rtformer_node within {self.opts.wait_s:g} s'
            raise DemoError(msg) from None

    def feed(self, frames: Iterator[tuple[int, int, np.ndarray]], bar: Any) -> None:
        """Send every frame (lockstep or at the video's rate) and record the answers."""
        misses = 0
        start = time.monotonic()
        first_stamp = last_stamp = None
        for index, stamp_ns, bgr in frames:
            self.inputs[stamp_ns] = (index, bgr)
            self.sent += 1
            last_stamp = stamp_ns
            if self.opts.realtime:
                first_stamp = stamp_ns if first_stamp is None else first_stamp
                delay = start + (stamp_ns - first_stamp) / 1e9 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.collector.expect(stamp_ns)
                self.publish(stamp_ns, bgr)
            elif self.exchange(stamp_ns, bgr, self.opts.timeout_s):
                misses = 0
            else:
                del self.inputs[stamp_ns]
                misses += 1
                bar.write(f'rtformer demo: frame {index}: no outputs within {self.opts.timeout_s:g} s')
                if misses >= MAX_MISSES:
                    transports = os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', 'unset')
                    msg = (f'{misses} frames in a row got no outputs within {self.opts.timeout_s:g} s: frames lost '
                           f'in transport? (FASTDDS_BUILTIN_TRANSPORTS={transports}; see docs/troubleshooting.md)')
                    raise DemoError(msg)
            self._drain(bar)
        if self.opts.realtime and last_stamp is not None:  # the last frame is never replaced: the node serves it
            self.collector.wait(last_stamp, self.opts.timeout_s)
            self._drain(bar)

    def _drain(self, bar: Any) -> None:
        for answer in self.collector.pop_done():
            if answer.stamp_ns not in self.inputs:  # a frame given up on, answered late
                continue
            index, bgr = self.inputs[answer.stamp_ns]
            for stamp in [s for s in self.inputs if s <= answer.stamp_ns]:  # older ones were dropped by the node
                del self.inputs[stamp]
            self.recording.add(index, bgr, answer)
            bar.update(1)

    def diagnostics(self) -> dict[str, str]:
        """The node's last diagnostics, once they count every frame it served for the demo (or after 3 s)."""
        return self.collector.wait_served(self.warmups + len(self.recording.latencies_ms), 3.0) or {}


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run the node on the video and write the files; the summary (also written to ``summary.json``).

    Raises:
        DemoError: no video or model, the node fails to start, or no frame comes back.
    """
    try:
        import rclpy  # noqa: F401 - only to fail early, with one line, where ROS 2 is missing
    except ImportError as err:
        msg = (f'needs ROS 2 for Python ({err.name} is missing): source your ROS 2 setup.bash, or install '
               'requirements.txt (ROS 2 wheels)')
        raise DemoError(msg) from None
    from tqdm import tqdm

    from rtformer_ros.ros.probe import NodeProcess, Probe

    model = _resolve_model(opts.model)
    source = _open_source(opts)
    info = source.info
    opts.out.mkdir(parents=True, exist_ok=True)
    recording = Recording(opts.out, info, sheet_frames(info.frames, info.fps))
    env = _dds_environment()
    print(f'rtformer demo: {info.name} ({info.width}x{info.height}, {info.fps:g} fps, {info.frames or "?"} frames) -> '
          f'rtformer_node ({model.name}, providers {opts.providers}) on {IMAGE_TOPIC}', flush=True)
    start = time.monotonic()
    try:
        with NodeProcess(params={'model': str(model), 'providers': opts.providers},
                         ros_args=['-r', f'__ns:={NAMESPACE}'], env=env) as node, _environment(env):
            with Probe('rtformer_demo') as probe:
                session = _Session(node, probe, opts, recording)
                session.wait_ready()
                frames = source.frames()
                first = next(frames)
                class_info = session.warm_up(first[2])
                bar = tqdm(total=info.frames or None, desc='demo', unit='frame', dynamic_ncols=True,
                           disable=None if opts.progress is None else not opts.progress)
                feed_start = time.monotonic()
                try:
                    session.feed(itertools.chain([first], frames), bar)
                finally:
                    bar.close()
                feed_s = time.monotonic() - feed_start
                diagnostics = session.diagnostics()
            node_exit = node.stop()
    finally:
        source.close()
        recording.close()
    if not recording.latencies_ms:
        msg = f'rtformer_node answered none of the {session.sent} frames sent'
        raise DemoError(msg)
    return write_summary(opts, model, info, class_info, recording, diagnostics, session.sent, feed_s,
                         time.monotonic() - start, node_exit)
