"""Play a bag's camera topic into a running ``rtformer_node`` and record what it publishes into a new bag.

The output bag holds the image topic and the ground-truth label topic copied from the input, and the node's
labels (plus any ``record`` topics) as received; ``rtformer eval --pred-topic`` then scores it. Messages go
through as serialised CDR (rclpy raw publish / raw subscriptions): nothing is converted on the way.

Timing: the bag's own (``rate`` scales it; the node drops what it cannot keep up with, as on a robot), or
``lockstep``: each frame waits for the node's labels with its stamp before the next is sent, so every frame is
scored whatever the machine's speed.

Imports rclpy: this module needs ROS 2 (the rest of the bag tools do not).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from rtformer_ros.bags.errors import BagError
from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE, BagReader, header_stamp_ns
from rtformer_ros.bags.writer import BagWriter, segmentation_topics

__all__ = ['ReplayOptions', 'ReplaySummary', 'replay']

NODE_NAME = 'rtformer_replay'
RESEND_S = 1.0  # lockstep: send a frame again after this long without an answer (a lost best-effort sample)
MATCH_SETTLE_S = 1.0  # timed: pause after our side matched the node, before the first frame (see _wait_for_peers)

# Frames out: reliable (reaches best-effort and reliable subscribers alike), depth for bursts at high --rate.
_PUBLISH_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
# Node outputs in: reliable like the node's publishers, deep enough for bursts of answers.
_RECORD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)


@dataclass(frozen=True)
class ReplayOptions:
    """See ``rtformer replay --help``.

    Attributes:
        bag: input rosbag2.
        output: new bag with the copied topics and the node's outputs.
        image_topic: camera topic in the bag (Image or CompressedImage).
        label_topic: ground truth copied through (None: none).
        publish_topic: where frames go in the ROS graph (default: ``image_topic``).
        pred_topic: the node's labels (default: ``<namespace of publish_topic>/segmentation/labels``).
        record: further topics of the node to record (sensor_msgs/Image, e.g. ``.../segmentation/color``).
        storage: 'sqlite3' or 'mcap'.
        rate: speed factor on the bag's timing (ignored with ``lockstep``).
        lockstep: wait for each frame's labels before sending the next.
        timeout_s: lockstep: give up on a frame after this long; timed: wait this long for late outputs.
        wait_s: how long to wait for the node to appear on both topics.
        limit: at most this many frames (0: all).
        progress: tqdm bar (None: only on a terminal).
    """

    bag: Path
    output: Path
    image_topic: str
    label_topic: str | None = None
    publish_topic: str | None = None
    pred_topic: str | None = None
    record: tuple[str, ...] = ()
    storage: str = 'sqlite3'
    rate: float = 1.0
    lockstep: bool = False
    timeout_s: float = 10.0
    wait_s: float = 20.0
    limit: int = 0
    progress: bool | None = None


@dataclass
class ReplaySummary:
    """What a replay did."""

    output: Path
    pred_topic: str
    published: int = 0  # frames sent (resends not counted)
    answered: int = 0  # frames whose labels came back
    missed: list[int] = field(default_factory=list)  # stamps (ns) without labels
    recorded: dict[str, int] = field(default_factory=dict)  # output topic -> messages
    wall_s: float = 0.0


def _message_class(msgtype: str) -> type:
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


class _Recorder:
    """Raw subscriptions of the node's outputs; tracks which stamps came back.

    Callbacks (executor thread) only queue the bytes: the bag is written from the replay thread alone, as
    sqlite3 connections may not cross threads.
    """

    def __init__(self, node: Node, pred_topic: str, record: Sequence[str]) -> None:
        self.bag: BagWriter | None = None  # set once the node is there: no empty bag is left behind otherwise
        self.pred_topic = pred_topic
        self.lock = threading.Condition()
        self.wanted: set[int] = set()  # stamps sent so far: only answers to these are recorded
        self.seen: dict[str, set[int]] = {}  # topic -> stamps recorded
        self._inbox: list[tuple[str, int, bytes]] = []
        self.subscriptions = []
        for topic in (pred_topic, *record):
            self.seen[topic] = set()
            self.subscriptions.append(node.create_subscription(
                _message_class(IMAGE), topic, lambda raw, topic=topic: self._on_message(topic, raw), _RECORD_QOS,
                raw=True))

    def attach(self, bag: BagWriter) -> None:
        """Add the recorded topics to ``bag`` and write into it from now on."""
        for topic in self.seen:
            bag.add_topic(topic, IMAGE)
        self.bag = bag

    def expect(self, stamp: int) -> None:
        """Record answers with ``stamp`` from now on."""
        with self.lock:
            self.wanted.add(stamp)

    def _on_message(self, topic: str, raw: bytes) -> None:
        try:
            stamp = header_stamp_ns(raw)
        except BagError:
            return
        with self.lock:
            # Only answers to frames of this replay, once each: a resent frame may be answered twice.
            if stamp not in self.wanted or stamp in self.seen[topic]:
                return
            self.seen[topic].add(stamp)
            self._inbox.append((topic, time.time_ns(), raw))
            self.lock.notify_all()

    def flush(self) -> None:
        """Write what arrived since the last call (replay thread only)."""
        assert self.bag is not None
        with self.lock:
            inbox, self._inbox = self._inbox, []
        for topic, timestamp, raw in inbox:
            self.bag.write_raw(topic, timestamp, raw)

    @property
    def answered(self) -> set[int]:
        """Stamps whose labels arrived."""
        with self.lock:
            return set(self.seen[self.pred_topic])

    def wait_for(self, stamps: set[int], deadline: float, all_topics: bool = False) -> bool:
        """Wait until the labels (``all_topics``: every recorded topic) of ``stamps`` are in, or ``deadline``.

        Args:
            stamps: header stamps in ns.
            deadline: ``time.monotonic()`` seconds.
            all_topics: wait for the ``record`` topics too, not just the labels.

        Returns:
            Whether everything arrived; what did is written to the bag either way.
        """
        topics = list(self.seen) if all_topics else [self.pred_topic]
        try:
            with self.lock:
                while not all(stamps <= self.seen[topic] for topic in topics):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self.lock.wait(min(left, 0.1))
                return True
        finally:
            self.flush()


def _wait_for_peers(publisher: Any, recorder: _Recorder, opts: ReplayOptions, publish_topic: str) -> None:
    deadline = time.monotonic() + opts.wait_s
    while time.monotonic() < deadline:
        if publisher.get_subscription_count() > 0 and recorder.subscriptions[0].get_publisher_count() > 0:
            return
        time.sleep(0.05)
    msg = (f'no node on {publish_topic} -> {recorder.pred_topic} after {opts.wait_s:g} s: is rtformer_node running '
           f'with matching topics (e.g. -r __ns:=/camera -r image:=image_raw) and the same ROS_DOMAIN_ID?')
    raise BagError(msg)


def replay(opts: ReplayOptions) -> ReplaySummary:
    """Publish the bag's frames to a running node and record its outputs (see the module docstring).

    Raises:
        BagError: a missing bag or topic, an existing output, bad options, or no node answering.
    """
    from tqdm import tqdm

    if opts.rate <= 0 or opts.timeout_s <= 0 or opts.wait_s < 0:
        msg = f'rate and timeout must be > 0, got rate {opts.rate}, timeout {opts.timeout_s}'
        raise BagError(msg)
    if opts.output.exists():  # before waiting for a node, not after
        msg = f'{opts.output}: exists already, not overwriting'
        raise BagError(msg)
    publish_topic = opts.publish_topic or opts.image_topic
    pred_topic = opts.pred_topic or segmentation_topics(publish_topic)['labels']
    summary = ReplaySummary(opts.output, pred_topic)
    start = time.perf_counter()
    with BagReader(opts.bag) as reader:
        msgtype = reader.require(opts.image_topic, (IMAGE, COMPRESSED_IMAGE))
        copied = [opts.image_topic]
        if opts.label_topic:
            reader.require(opts.label_topic, (IMAGE,))
            copied.append(opts.label_topic)
        clashes = {pred_topic, *opts.record} & set(copied)
        if clashes:
            msg = f'recorded topic {sorted(clashes)[0]} is also copied from the bag'
            raise BagError(msg)
        total = reader.message_count(opts.image_topic)
        total = min(total, opts.limit) if opts.limit > 0 else total
        context = Context()
        # No rclpy signal handlers: Ctrl-C stays a KeyboardInterrupt here, and the bag is closed on the way out.
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        executor = SingleThreadedExecutor(context=context)
        node = Node(NODE_NAME, context=context)
        bag = BagWriter(opts.output, opts.storage)  # checks the storage name before anything starts
        spinner = threading.Thread(target=_spin, args=(executor,), name='replay_executor', daemon=True)
        try:
            recorder = _Recorder(node, pred_topic, opts.record)
            publisher = node.create_publisher(_message_class(msgtype), publish_topic, _PUBLISH_QOS)
            executor.add_node(node)
            spinner.start()
            _wait_for_peers(publisher, recorder, opts, publish_topic)
            if not opts.lockstep:
                # Matching is seen on our side first; the node's side (its reader of our frames, and the readers of
                # its outputs that its laziness checks) completes moments later. A timed replay never resends, so
                # frames sent before then would be lost (best effort) or skipped as unwatched.
                time.sleep(MATCH_SETTLE_S)
            with bag:
                for topic in copied:
                    like = reader.connections(topic)[0]
                    bag.add_topic(topic, like.msgtype, like=like)
                recorder.attach(bag)
                bar = tqdm(total=total, desc='replay', unit='frame',
                           disable=None if opts.progress is None else not opts.progress)
                try:
                    _play(reader, copied, opts, publisher, recorder, bag, summary, total, bar)
                finally:
                    bar.close()
                    recorder.flush()
                summary.recorded = dict(bag.counts)
        finally:
            executor.shutdown(timeout_sec=1.0)
            if spinner.is_alive():
                spinner.join(timeout=2.0)
            node.destroy_node()
            rclpy.try_shutdown(context=context)
    summary.answered = summary.published - len(summary.missed)
    summary.wall_s = time.perf_counter() - start
    return summary


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def _first_stamps(reader: BagReader, topic: str, count: int) -> set[int]:
    """Header stamps of the first ``count`` messages on ``topic`` that have one."""
    stamps: set[int] = set()
    for _, _, raw in reader.messages([topic]):
        if len(stamps) >= count:
            break
        try:
            stamps.add(header_stamp_ns(raw))
        except BagError:
            continue
    return stamps


def _play(reader: BagReader, copied: list[str], opts: ReplayOptions, publisher: Any, recorder: _Recorder,
          bag: BagWriter, summary: ReplaySummary, total: int, bar: Any) -> None:
    """The replay loop: copy label messages, publish (and in lockstep, await) each frame."""
    # With a limit, only the labels of the frames sent are copied (a label may precede its image in the bag).
    sent = _first_stamps(reader, opts.image_topic, total) if opts.limit > 0 else None
    first_bag_ns: int | None = None
    last_stamp: int | None = None
    t0 = time.monotonic()
    for topic, timestamp, raw in reader.messages(copied):
        try:
            stamp = header_stamp_ns(raw)
        except BagError:
            continue  # no stamp: no way to match an answer or a label
        if sent is not None and stamp not in sent:
            continue
        if topic != opts.image_topic:
            bag.write_raw(topic, time.time_ns(), raw)
            continue
        if summary.published >= total:
            continue
        raw = bytes(raw)  # rclpy publishes serialised messages only from bytes (mcap reads give memoryviews)
        if not opts.lockstep:
            if first_bag_ns is None:
                first_bag_ns = timestamp
            delay = t0 + (timestamp - first_bag_ns) / 1e9 / opts.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        recorder.expect(stamp)
        last_stamp = stamp
        bag.write_raw(opts.image_topic, time.time_ns(), raw)
        publisher.publish(raw)
        recorder.flush()
        summary.published += 1
        bar.update()
        if opts.lockstep:
            deadline = time.monotonic() + opts.timeout_s
            while (not recorder.wait_for({stamp}, min(deadline, time.monotonic() + RESEND_S))
                   and time.monotonic() < deadline):
                publisher.publish(raw)
    # Outputs may still be on their way. The node serves frames in order, so once the last frame is answered
    # the frames it dropped will not be; then the record topics of the answered frames.
    if not opts.lockstep and last_stamp is not None:
        recorder.wait_for({last_stamp}, time.monotonic() + opts.timeout_s)
    recorder.wait_for(recorder.answered, time.monotonic() + opts.timeout_s, all_topics=True)
    summary.missed = sorted(recorder.wanted - recorder.answered)
