"""Write rosbag2 bags (sqlite3 or mcap) with rosbags: typed topics, messages serialised with the typestore.

Message types come from the ROS 2 Humble typestore: sensor_msgs/Image, CompressedImage and std_msgs/Header
have not changed since, so the bags play on Humble through Kilted. Bags are written in rosbag2 format
version 8 (Jazzy's; Kilted reads it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from rtformer_ros.bags import BagError
from rtformer_ros.bags.handle import BagHandle
from rtformer_ros.util import split_ns

__all__ = ['BAG_VERSION', 'STORAGES', 'TYPESTORE', 'BagWriter', 'compressed_message', 'image_message',
           'segmentation_topics']

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
BAG_VERSION = 8
STORAGES: dict[str, StoragePlugin] = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
"""``--storage`` values -> rosbags storage plugins."""

_Image = TYPESTORE.types['sensor_msgs/msg/Image']
_CompressedImage = TYPESTORE.types['sensor_msgs/msg/CompressedImage']
_Header = TYPESTORE.types['std_msgs/msg/Header']
_Time = TYPESTORE.types['builtin_interfaces/msg/Time']


def _header(stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = split_ns(stamp_ns)
    return _Header(stamp=_Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_message(stamp_ns: int, frame_id: str, pixels: np.ndarray, encoding: str) -> Any:
    """A rosbags ``sensor_msgs/Image`` holding ``pixels`` (H, W[, C]) uint8, rows unpadded.

    Args:
        stamp_ns: header stamp in ns since the epoch.
        frame_id: header frame.
        pixels: uint8 array (made contiguous if it is not).
        encoding: ROS encoding matching the channels ('mono8', 'rgb8', 'bgr8').
    """
    pixels = np.ascontiguousarray(pixels, np.uint8)
    height, width = pixels.shape[:2]
    return _Image(header=_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
                  is_bigendian=0, step=pixels.strides[0], data=pixels.reshape(-1))


def compressed_message(stamp_ns: int, frame_id: str, data: bytes | np.ndarray, fmt: str) -> Any:
    """A rosbags ``sensor_msgs/CompressedImage``; ``fmt`` as image_transport writes it ('bgr8; jpeg ...')."""
    return _CompressedImage(header=_header(stamp_ns, frame_id), format=fmt,
                            data=np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data)


def segmentation_topics(image_topic: str) -> dict[str, str]:
    """``labels``/``color``/``overlay`` topics beside a camera topic, as the node names them.

    ``/camera/image_raw`` and ``/camera/image_raw/compressed`` give ``/camera/segmentation/labels`` etc.;
    a top-level ``/image`` gives ``/segmentation/labels``.
    """
    name = image_topic.rstrip('/')
    if name.endswith('/compressed'):
        name = name[:-len('/compressed')]
    namespace = name.rsplit('/', 1)[0] if '/' in name else ''
    return {kind: f'{namespace}/segmentation/{kind}' for kind in ('labels', 'color', 'overlay')}


class BagWriter(BagHandle[Writer]):
    """A new bag; use as a context manager. Topics are added once, then written to by name.

    Example::

        with BagWriter(Path('out'), 'mcap') as bag:
            bag.add_topic('/camera/labels', 'sensor_msgs/msg/Image')
            bag.write('/camera/labels', stamp_ns, image_message(stamp_ns, 'camera', labels, 'mono8'))
    """

    def __init__(self, path: Path, storage: str = 'sqlite3') -> None:
        """Check the arguments; ``open`` (or ``with``) creates the bag.

        Args:
            path: folder of the new bag; must not exist.
            storage: 'sqlite3' or 'mcap'.

        Raises:
            BagError: unknown storage.
        """
        if storage not in STORAGES:
            msg = f'{path}: unknown storage {storage!r} (use {" or ".join(STORAGES)})'
            raise BagError(msg)
        self.path = Path(path)
        self.storage = storage
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}

    def open(self) -> None:
        """Create the bag folder and storage file.

        Raises:
            BagError: the path exists or cannot be created.
        """
        if self.path.exists():
            msg = f'{self.path}: exists already, not overwriting'
            raise BagError(msg)
        writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[self.storage])
        try:
            writer.open()
        except (WriterError, OSError) as err:
            msg = f'{self.path}: cannot create bag ({err})'
            raise BagError(msg) from None
        self._handle = writer

    def add_topic(self, topic: str, msgtype: str, like: Connection | None = None) -> None:
        """Register ``topic``; its definition from the typestore, or copied from ``like`` (a reader's connection).

        Copying the definition keeps a topic taken from another bag byte-identical, whatever distro wrote it.

        Raises:
            BagError: the topic is registered already, or the type is unknown to the typestore.
        """
        if topic in self._connections:
            msg = f'{self.path}: topic {topic} added twice'
            raise BagError(msg)
        try:
            if like is not None and like.msgdef.data and like.digest.startswith('RIHS01_'):
                conn = self._opened.add_connection(topic, msgtype, msgdef=like.msgdef.data, rihs01=like.digest)
            else:
                conn = self._opened.add_connection(topic, msgtype, typestore=TYPESTORE)
        except (WriterError, KeyError) as err:
            msg = f'{self.path}: cannot add topic {topic} of type {msgtype} ({err})'
            raise BagError(msg) from None
        self._connections[topic] = conn
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, message: Any) -> None:
        """Serialise ``message`` (a rosbags message of the topic's type) and store it at ``timestamp_ns``."""
        conn = self._connections[topic]
        self.write_raw(topic, timestamp_ns, TYPESTORE.serialize_cdr(message, conn.msgtype))

    def write_raw(self, topic: str, timestamp_ns: int, raw: bytes | memoryview) -> None:
        """Store already serialised CDR bytes on ``topic`` at ``timestamp_ns`` (bag time)."""
        self._opened.write(self._connections[topic], timestamp_ns, raw)
        self.counts[topic] += 1
