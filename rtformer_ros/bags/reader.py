"""Read rosbag2 bags (sqlite3 or mcap) with rosbags: topics, frames paired by stamp.

No ROS install is needed: message types come from the definitions stored in the bag, or from the ROS 2 Humble
typestore for bags without them.

Pairing works on the raw CDR bytes: every message starting with a ``std_msgs/Header`` carries its stamp at
bytes 4..12, so stamps are read without deserialising. ``BagReader.pair`` makes one pass to learn which stamps
appear on every wanted topic, ``BagReader.frames`` a second pass that yields them, holding only messages whose
partners are still to come (so memory stays small even when most messages have no partner).

Images and labels of the deserialised messages are decoded by ``rtformer_ros.image.codec`` (the node's codec,
which needs no ROS install either).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.typesys import Stores, get_typestore

from rtformer_ros.bags import BagError
from rtformer_ros.bags.handle import BagHandle
from rtformer_ros.errors import first_line
from rtformer_ros.util import header_stamp_ns

__all__ = ['COMPRESSED_IMAGE', 'IMAGE', 'BagReader', 'Frame', 'Pairing']

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'

_DEFAULT_TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)  # only for bags that store no message definitions


class Frame(NamedTuple):
    """Messages of several topics with one header stamp."""

    stamp_ns: int  # header stamp
    timestamps_ns: dict[str, int]  # topic -> bag (receive) time
    raw: dict[str, bytes]  # topic -> CDR bytes


class Pairing(NamedTuple):
    """What ``BagReader.pair`` found: the stamps present on all topics and what is left over."""

    topics: tuple[str, ...]
    stamps: frozenset[int]  # stamps with one message on every topic
    unpaired: dict[str, int]  # topic -> messages without partners (duplicate stamps included)
    headerless: int  # messages too short to hold a header: corrupt

    @property
    def frames(self) -> int:
        return len(self.stamps)


class BagReader(BagHandle[AnyReader]):
    """A bag opened for reading; use as a context manager.

    Example::

        with BagReader(Path('run1')) as bag:
            bag.require('/camera/image_raw', (IMAGE, COMPRESSED_IMAGE))
            pairing = bag.pair(['/camera/image_raw', '/camera/labels'])
            for frame in bag.frames(pairing):
                msg = bag.deserialize(frame.raw['/camera/image_raw'], '/camera/image_raw')
                image, order = decode_image(msg)  # rtformer_ros.image.codec
    """

    def __init__(self, path: Path) -> None:
        """Remember the path; ``open`` (or ``with``) reads it.

        Args:
            path: rosbag2 folder, or a single ``.db3``/``.mcap`` file.
        """
        self.path = Path(path)
        self._types: dict[str, str] = {}

    def open(self) -> None:
        """Open the bag and read its topic table.

        Raises:
            BagError: the path is missing or is not a readable bag.
        """
        if not self.path.exists():
            msg = f'{self.path}: no such bag'
            raise BagError(msg)
        if self.path.suffix == '.bag':  # ROS 1 serialisation: stamps sit elsewhere and CDR copies would be wrong
            msg = f'{self.path}: a ROS 1 bag; convert it first (rosbags-convert --src {self.path.name})'
            raise BagError(msg)
        try:
            reader = AnyReader([self.path], default_typestore=_DEFAULT_TYPESTORE)
            reader.open()
        except (AnyReaderError, OSError, ValueError, KeyError) as err:
            msg = f'{self.path}: cannot read bag ({first_line(err)})'
            raise BagError(msg) from None
        self._handle = reader
        self._types = {topic: info.msgtype or '?' for topic, info in reader.topics.items()}

    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type of every topic in the bag."""
        return dict(self._types)

    def message_count(self, topic: str) -> int:
        """Messages on ``topic`` (0 for an unknown topic)."""
        info = self._opened.topics.get(topic)
        return info.msgcount if info is not None else 0

    def connections(self, topic: str) -> list[Connection]:
        """The bag's connections of ``topic`` (several when recorded in parts)."""
        return [conn for conn in self._opened.connections if conn.topic == topic]

    def require(self, topic: str, msgtypes: Sequence[str]) -> str:
        """Check that ``topic`` exists with one of ``msgtypes``; its type.

        Raises:
            BagError: the topic is missing (the message lists the bag's topics) or has another type.
        """
        msgtype = self._types.get(topic)
        if msgtype is None:
            listing = ', '.join(f'{name} ({kind})' for name, kind in sorted(self._types.items())) or 'none'
            msg = f'{self.path}: no topic {topic} (topics: {listing})'
            raise BagError(msg)
        if msgtype not in msgtypes:
            msg = f'{self.path}: topic {topic} is {msgtype}, expected {" or ".join(msgtypes)}'
            raise BagError(msg)
        return msgtype

    def messages(self, topics: Sequence[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, bag time in ns, CDR bytes) of ``topics`` in bag time order.

        Raises:
            BagError: the storage cannot be read.
        """
        connections = [conn for conn in self._opened.connections if conn.topic in topics]
        if not connections:
            return
        try:
            for conn, timestamp, raw in self._opened.messages(connections=connections):
                yield conn.topic, timestamp, raw
        except (AnyReaderError, OSError, ValueError, KeyError) as err:  # sqlite/mcap errors surface as these
            msg = f'{self.path}: cannot read messages ({first_line(err)})'
            raise BagError(msg) from None

    def pair(self, topics: Sequence[str]) -> Pairing:
        """Find the header stamps that appear once on every topic in ``topics`` (first pass over the bag)."""
        seen: dict[str, Counter[int]] = {topic: Counter() for topic in topics}
        headerless = 0
        for topic, _, raw in self.messages(topics):
            stamp = header_stamp_ns(raw)
            if stamp is None:
                headerless += 1
            else:
                seen[topic][stamp] += 1
        stamps = frozenset.intersection(*(frozenset(counts) for counts in seen.values()))
        # Every message beyond the first of a stamp on a topic is unpaired, as is every message of a lone stamp.
        unpaired = {topic: sum(counts.values()) - sum(1 for s in counts if s in stamps) for topic, counts in
                    seen.items()}
        return Pairing(tuple(topics), stamps, unpaired, headerless)

    def frames(self, pairing: Pairing) -> Iterator[Frame]:
        """Yield the paired frames (second pass), each as soon as its last message is read."""
        pending: dict[int, Frame] = {}
        done: set[int] = set()
        wanted = len(pairing.topics)
        for topic, timestamp, raw in self.messages(pairing.topics):
            stamp = header_stamp_ns(raw)
            if stamp not in pairing.stamps or stamp in done:  # None (no header) is in neither
                continue
            frame = pending.setdefault(stamp, Frame(stamp, {}, {}))
            if topic in frame.raw:  # a duplicate: the first message of a stamp counts
                continue
            frame.raw[topic] = raw
            frame.timestamps_ns[topic] = timestamp
            if len(frame.raw) == wanted:
                del pending[stamp]
                done.add(stamp)
                yield frame

    def deserialize(self, raw: bytes, topic: str) -> object:
        """The message object of ``raw`` from ``topic`` (types from the bag).

        Raises:
            BagError: the bytes do not deserialise (truncated or garbage).
        """
        try:
            return self._opened.deserialize(raw, self._types[topic])
        except Exception as err:  # rosbags raises struct/index/value errors on bad bytes
            msg = f'{topic}: corrupt message ({first_line(err)})'
            raise BagError(msg) from None
