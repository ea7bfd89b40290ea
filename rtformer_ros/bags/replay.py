"""Play a bag's camera topic into a running ``rtformer_node`` and record what it publishes into a new bag.

The output bag holds the image topic and the ground-truth label topic copied from the input, and the node's
labels (plus any ``record`` topics) as received; ``rtformer eval --pred-topic`` then scores it. Messages go
through as serialised CDR (raw publish and subscriptions of ``StampedClient``): nothing is converted on the way.

Timing: the bag's own (``rate`` scales it; the node drops what it cannot keep up with, as on a robot), or
``lockstep``: each frame waits for the node's labels with its stamp before the next is sent, so every frame is
scored whatever the machine's speed.

Imports rclpy: this module needs ROS 2 (the rest of the bag tools do not).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtformer_ros.bags import BagError
from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE, BagReader
from rtformer_ros.bags.writer import BagWriter, segmentation_topics
from rtformer_ros.ros.client import Inbox, StampedClient
from rtformer_ros.util import header_stamp_ns, progress

__all__ = ['ReplayOptions', 'ReplaySummary', 'replay']

NODE_NAME = 'rtformer_replay'
MATCH_SETTLE_S = 1.0  # timed: pause after our side matched the node, before the first frame (see replay())


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


def replay(opts: ReplayOptions) -> ReplaySummary:
    """Publish the bag's frames to a running node and record its outputs (see the module docstring).

    Raises:
        BagError: a missing bag or topic, an existing output, bad options, or no node answering.
    """
    if opts.rate <= 0 or opts.timeout_s <= 0 or opts.wait_s < 0:
        msg = (f'--rate and --timeout must be > 0 and --wait >= 0, got {opts.rate:g}, {opts.timeout_s:g} and '
               f'{opts.wait_s:g}')
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
        bag = BagWriter(opts.output, opts.storage)  # checks the storage name before anything starts
        with StampedClient(NODE_NAME) as client:
            outputs = {topic: client.subscribe(_message_class(IMAGE), topic, history=False, raw=True)
                       for topic in (pred_topic, *opts.record)}
            publisher = client.publisher(_message_class(msgtype), publish_topic)
            if not client.wait_on(lambda: client.peers_ready(publisher, [outputs[pred_topic]]), opts.wait_s):
                msg = (f'no node on {publish_topic} -> {pred_topic} after {opts.wait_s:g} s: is rtformer_node running '
                       f'with matching topics (e.g. -r __ns:=/camera -r image:=image_raw) and the same ROS_DOMAIN_ID?')
                raise BagError(msg)
            if not opts.lockstep:
                # Matching is seen on our side first; the node's side (its reader of our frames, and the readers of
                # its outputs that its laziness checks) completes moments later. A timed replay never resends, so
                # frames sent before then would be lost (best effort) or skipped as unwatched.
                time.sleep(MATCH_SETTLE_S)
            with bag:
                for topic in copied:
                    like = reader.connections(topic)[0]
                    bag.add_topic(topic, like.msgtype, like=like)
                for topic in outputs:
                    bag.add_topic(topic, IMAGE)
                with progress(total=total, desc='replay', unit='frame', enabled=opts.progress) as bar:
                    _play(client, publisher, outputs, _frames(reader, copied, opts, bag, total), opts, bag,
                          summary, bar)
                summary.recorded = dict(bag.counts)
    summary.answered = summary.published - len(summary.missed)
    summary.wall_s = time.perf_counter() - start
    return summary


def _frames(reader: BagReader, copied: list[str], opts: ReplayOptions, bag: BagWriter,
            total: int) -> Iterator[tuple[float, int, bytes]]:
    """The first ``total`` frames as (due s on the bag's clock / rate, stamp, CDR bytes); the label messages (of
    those frames only) are copied to the output bag on the way."""
    sent: set[int] | None = None
    if opts.limit > 0:  # only the labels of the frames sent are copied (a label may precede its image in the bag)
        sent = set()
        for _, _, raw in reader.messages([opts.image_topic]):
            if len(sent) >= total:
                break
            stamp = header_stamp_ns(raw)
            if stamp is not None:
                sent.add(stamp)
    first_ns: int | None = None
    count = 0
    for topic, timestamp, raw in reader.messages(copied):
        stamp = header_stamp_ns(raw)
        if stamp is None or (sent is not None and stamp not in sent):  # no stamp: no way to match an answer
            continue
        if topic != opts.image_topic:
            bag.write_raw(topic, time.time_ns(), raw)
        elif count < total:
            count += 1
            first_ns = timestamp if first_ns is None else first_ns
            # rclpy publishes serialised messages only from bytes (mcap reads give memoryviews)
            yield (timestamp - first_ns) / 1e9 / opts.rate, stamp, bytes(raw)


def _play(client: StampedClient, publisher: Any, outputs: dict[str, Inbox[bytes]],
          frames: Iterator[tuple[float, int, bytes]], opts: ReplayOptions, bag: BagWriter, summary: ReplaySummary,
          bar: Any) -> None:
    """Publish every frame (lockstep or timed), writing the answers into ``bag`` as they come."""
    labels = outputs[summary.pred_topic]
    offset_ns = time.time_ns() - time.monotonic_ns()  # receipt times are monotonic, bag times wall clock

    def flush() -> None:  # from this thread only: sqlite3 connections may not cross threads
        answers = [(received, topic, raw) for topic, inbox in outputs.items()
                   for received, raw in inbox.take().values()]
        for received, topic, raw in sorted(answers, key=lambda answer: answer[0]):
            bag.write_raw(topic, received + offset_ns, raw)

    last: int | None = None
    try:
        if opts.lockstep:
            for _, stamp, raw in frames:
                summary.published += 1
                bag.write_raw(opts.image_topic, time.time_ns(), raw)
                client.lockstep(publisher, stamp, raw, [labels], opts.timeout_s)
                flush()
                bar.update()
        else:
            for stamp, raw in client.timed(publisher, frames):
                last = stamp
                summary.published += 1
                bag.write_raw(opts.image_topic, time.time_ns(), raw)
                flush()
                bar.update()
            # The node serves frames in order: once the last frame is answered, those it dropped will not be.
            if last is not None:
                client.wait([last], [labels], opts.timeout_s)
        # Then the record topics of the frames answered.
        with client.changed:
            answered = [stamp for stamp in client.sent if labels.answered(stamp)]
        client.wait(answered, list(outputs.values()), opts.timeout_s)
    finally:  # what came back is kept, also on an error or Ctrl-C
        flush()
    with client.changed:  # labels that came during the last wait are in the bag: they count as answered
        answered = [stamp for stamp in client.sent if labels.answered(stamp)]
    summary.missed = sorted(set(client.sent) - set(answered))
