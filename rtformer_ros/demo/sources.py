"""What the demo feeds the node: a video file (OpenCV) or a rosbag2's camera topic, as stamped BGR frames."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtformer_ros.demo.errors import DemoError

__all__ = ['SourceInfo', 'open_source']

DEFAULT_FPS = 30.0  # a video that declares no frame rate


class SourceInfo(NamedTuple):
    """What is fed to the node."""

    name: str  # file, or bag:topic
    width: int
    height: int
    fps: float
    frames: int  # frames that will be sent (after --max-frames); 0: unknown


class _Video:
    """A video file read by OpenCV; stamps are the frame times on the video's timeline (index / fps)."""

    def __init__(self, path: Path, max_frames: int) -> None:
        import cv2

        if not path.is_file():
            msg = f'{path}: no such video file'
            raise DemoError(msg)
        self._capture = cv2.VideoCapture(str(path))
        ok, self._first = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok:
            self._capture.release()
            msg = f'{path}: OpenCV cannot read a frame of it (not a video, or an unsupported codec)'
            raise DemoError(msg)
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        count = max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # 0: the container does not say
        self._limit = max_frames if max_frames > 0 else sys.maxsize
        frames = min(count, self._limit) if count else max_frames
        self.info = SourceInfo(str(path), self._first.shape[1], self._first.shape[0], self._fps, frames)

    def frames(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(index, stamp ns, BGR) of each frame."""
        frame, index = self._first, 0
        while index < self._limit:
            yield index, round(index * 1e9 / self._fps), frame
            index += 1
            ok, frame = self._capture.read()
            if not ok:
                break

    def close(self) -> None:
        self._capture.release()


class _Bag:
    """A rosbag2's camera topic (Image in any encoding the bag tools decode, or CompressedImage); its stamps."""

    def __init__(self, path: Path, topic: str | None, max_frames: int) -> None:
        from rtformer_ros.bags.errors import BagError
        from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE, BagReader, header_stamp_ns

        self._reader = BagReader(path)
        try:
            self._reader.open()
            self.topic = topic or _pick_image_topic(self._reader.topics, path)
            self._reader.require(self.topic, (IMAGE, COMPRESSED_IMAGE))
            count = self._reader.message_count(self.topic)
            self._limit = min(count, max_frames) if max_frames > 0 else count
            # Frame rate (for --realtime and the video file) from the stamps of the first few frames.
            stamps = [header_stamp_ns(raw) for _, _, raw in islice(self._reader.messages([self.topic]), 30)]
            first = next(self.frames())[2]
        except DemoError:  # several cameras to choose from, or a first frame that does not decode
            self._reader.close()
            raise
        except (BagError, StopIteration) as err:
            self._reader.close()
            msg = f'{path}: {err}' if isinstance(err, BagError) else f'{path}: no frames on {self.topic}'
            raise DemoError(msg) from None
        steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a)
        fps = 1e9 / steps[len(steps) // 2] if steps else DEFAULT_FPS
        self.info = SourceInfo(f'{path}:{self.topic}', first.shape[1], first.shape[0], fps, self._limit)

    def frames(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(index, header stamp ns, BGR) of each frame."""
        from rtformer_ros.bags.errors import BagError
        from rtformer_ros.bags.reader import header_stamp_ns
        from rtformer_ros.image.codec import CodecError, decode_compressed, decode_image

        for index, (_, _, raw) in enumerate(islice(self._reader.messages([self.topic]), self._limit)):
            try:
                msg = self._reader.deserialize(raw, self.topic)
                decoded = decode_compressed(msg) if hasattr(msg, 'format') else decode_image(msg)
            except (BagError, CodecError) as err:
                text = f'{self._reader.path}: {self.topic}: {err}'
                raise DemoError(text) from None
            bgr = decoded.image if decoded.color_order == 'bgr' else np.ascontiguousarray(decoded.image[:, :, ::-1])
            yield index, header_stamp_ns(raw), bgr

    def close(self) -> None:
        self._reader.close()


def _pick_image_topic(topics: dict[str, str], path: Path) -> str:
    """``/camera/image_raw`` (or its compressed twin) if there, else the one camera-like topic of the bag."""
    from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE

    for preferred in ('/camera/image_raw', '/camera/image_raw/compressed'):
        if preferred in topics:
            return preferred
    images = sorted(t for t, kind in topics.items() if kind in (IMAGE, COMPRESSED_IMAGE)
                    and not any(word in t for word in ('label', 'segmentation', 'depth')))
    if len(images) == 1:
        return images[0]
    msg = f'{path}: pass --image-topic (camera topics found: {", ".join(images) or "none"})'
    raise DemoError(msg)


def open_source(video: Path | None, bag: Path | None, topic: str | None, max_frames: int) -> _Video | _Bag:
    """The video, the bag's camera topic, or vtest.avi (fetched on first use).

    Raises:
        DemoError: both or neither readable, or no default video to be had.
    """
    from rtformer_ros.demo.video import fetch_vtest

    if video is not None and bag is not None:
        msg = 'pass either --video or --bag, not both'
        raise DemoError(msg)
    if bag is not None:
        return _Bag(bag, topic, max_frames)
    if video is None:
        try:
            video = fetch_vtest()
        except DemoError as err:
            msg = f'no demo video: {err}; pass --video FILE (any video OpenCV reads) or --bag BAG'
            raise DemoError(msg) from None
    return _Video(video, max_frames)
