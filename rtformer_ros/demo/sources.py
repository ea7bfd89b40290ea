"""What the demo feeds the node: a video file (OpenCV) or a rosbag2's camera topic, as stamped BGR frames; the
default video, OpenCV's ``vtest.avi``, comes out of Debian's ``opencv-doc`` (``apt-get download``, no root)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from rtformer_ros.bags import BagError
from rtformer_ros.bags.reader import COMPRESSED_IMAGE, IMAGE, BagReader
from rtformer_ros.demo.command import DemoError
from rtformer_ros.image.codec import CodecError, decode_camera
from rtformer_ros.util import cache_dir, header_stamp_ns, stamp_ns

__all__ = ['VTEST_MEMBER', 'VTEST_PACKAGE', 'Source', 'extract_from_deb', 'fetch_vtest', 'open_source']

DEFAULT_FPS = 30.0  # a video that declares no frame rate
VTEST_PACKAGE = 'opencv-doc'
VTEST_MEMBER = './usr/share/doc/opencv-doc/examples/data/vtest.avi'


class Source(NamedTuple):
    """What is fed to the node: ``feed`` yields (index, stamp ns, BGR) per frame; ``close`` releases the file."""

    name: str  # file, or bag:topic
    width: int
    height: int
    fps: float
    frames: int  # frames that will be sent (after --max-frames); 0: unknown
    feed: Iterator[tuple[int, int, np.ndarray]]
    close: Callable[[], None]


def _video(path: Path, max_frames: int) -> Source:
    """A video file read by OpenCV; stamps are the frame times on the video's timeline (index / fps)."""
    if not path.is_file():
        msg = f'{path}: no such video file'
        raise DemoError(msg)
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        msg = f'{path}: OpenCV cannot read a frame of it (not a video, or an unsupported codec)'
        raise DemoError(msg)
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
    count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # 0: the container does not say
    limit = max_frames if max_frames > 0 else sys.maxsize

    def feed() -> Iterator[tuple[int, int, np.ndarray]]:
        frame, index = first, 0
        while index < limit:
            yield index, round(index * 1e9 / fps), frame
            index += 1
            ok, frame = capture.read()
            if not ok:
                return

    return Source(str(path), first.shape[1], first.shape[0], fps, min(count, limit) if count else max_frames,
                  feed(), capture.release)


def _bag(path: Path, topic: str | None, max_frames: int) -> Source:
    """A rosbag2's camera topic (Image in any encoding the bag tools decode, or CompressedImage); its stamps."""
    reader = BagReader(path)

    def feed() -> Iterator[tuple[int, int, np.ndarray]]:  # of ``topic`` and ``limit`` as set below
        for index, (_, _, raw) in enumerate(islice(reader.messages([topic]), limit)):
            try:
                msg = reader.deserialize(raw, topic)
                decoded = decode_camera(msg)
            except (BagError, CodecError) as err:
                text = f'{path}: {topic}: {err}'
                raise DemoError(text) from None
            yield index, stamp_ns(msg.header.stamp), decoded.bgr()

    try:
        reader.open()
        topic = topic or _pick_image_topic(reader.topics, path)
        reader.require(topic, (IMAGE, COMPRESSED_IMAGE))
        count = reader.message_count(topic)
        limit = min(count, max_frames) if max_frames > 0 else count
        # Frame rate (for --realtime and the video file) from the stamps of the first few frames.
        stamps = [s for _, _, raw in islice(reader.messages([topic]), 30) if (s := header_stamp_ns(raw)) is not None]
        first = next(feed())[2]
    except (DemoError, BagError, StopIteration) as err:  # DemoError: several cameras, or a frame that won't decode
        reader.close()
        if isinstance(err, DemoError):
            raise
        msg = f'{path}: {err}' if isinstance(err, BagError) else f'{path}: no frames on {topic}'
        raise DemoError(msg) from None
    steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a)
    fps = 1e9 / steps[len(steps) // 2] if steps else DEFAULT_FPS
    return Source(f'{path}:{topic}', first.shape[1], first.shape[0], fps, limit, feed(), reader.close)


def _pick_image_topic(topics: dict[str, str], path: Path) -> str:
    """``/camera/image_raw`` (or its compressed twin) if there, else the one camera-like topic of the bag."""
    for preferred in ('/camera/image_raw', '/camera/image_raw/compressed'):
        if preferred in topics:
            return preferred
    images = sorted(t for t, kind in topics.items() if kind in (IMAGE, COMPRESSED_IMAGE)
                    and not any(word in t for word in ('label', 'segmentation', 'depth')))
    if len(images) == 1:
        return images[0]
    msg = f'{path}: pass --image-topic (camera topics found: {", ".join(images) or "none"})'
    raise DemoError(msg)


def open_source(video: Path | None, bag: Path | None, topic: str | None, max_frames: int) -> Source:
    """The video, the bag's camera topic, or vtest.avi (fetched on first use); DemoError if none can be read."""
    if video is not None and bag is not None:
        msg = 'pass either --video or --bag, not both'
        raise DemoError(msg)
    if bag is not None:
        return _bag(bag, topic, max_frames)
    if video is None:
        try:
            video = fetch_vtest()
        except DemoError as err:
            msg = f'no demo video: {err}; pass --video FILE (any video OpenCV reads) or --bag BAG'
            raise DemoError(msg) from None
    return _video(video, max_frames)


def extract_from_deb(deb: Path, member: str, dest: Path) -> Path:
    """Copy ``member`` (``./usr/...`` or ``usr/...``) out of package ``deb`` (``dpkg-deb --fsys-tarfile``, read as a
    tar stream) to ``dest``, through a temporary name so a broken run leaves nothing behind. DemoError: dpkg-deb
    missing or failing, or no such file in the package."""
    wanted = member.removeprefix('./')
    partial = dest.with_name(dest.name + '.part')
    try:
        proc = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', str(deb)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as err:
        msg = f'{deb}: cannot run dpkg-deb ({err.strerror})'
        raise DemoError(msg) from None
    try:
        with tarfile.open(fileobj=proc.stdout, mode='r|') as tar:  # a stream: only the member is written out
            found = next((info for info in tar if info.isfile() and info.name.removeprefix('./') == wanted), None)
            if found is not None:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(found) as source, partial.open('wb') as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(source, out)
    except tarfile.TarError as err:
        partial.unlink(missing_ok=True)
        msg = f'{deb}: not a readable Debian package ({err})'
        raise DemoError(msg) from None
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        error = proc.stderr.read().decode(errors='replace').strip()  # type: ignore[union-attr]
        code = proc.wait()
    if found is None:
        reason = error.splitlines()[-1] if code and error else f'no file {member} in it'
        msg = f'{deb}: {reason}'
        raise DemoError(msg)
    partial.replace(dest)
    return dest


def fetch_vtest(cache: Path | None = None, package: str = VTEST_PACKAGE) -> Path:
    """``vtest.avi`` in the cache, downloaded (``apt-get download``) and extracted on first use; only the video is
    kept, not the ~96 MB package. DemoError: apt-get or dpkg-deb missing or failing (no package lists, no network).
    """
    cache = cache or cache_dir()
    video = cache / Path(VTEST_MEMBER).name
    if video.is_file():
        return video
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='download-', dir=cache) as tmp:
        print(f'rtformer demo: downloading {package} (Debian package, ~96 MB) for {video.name} ...', flush=True)
        try:
            result = subprocess.run(['apt-get', 'download', package], cwd=tmp, capture_output=True, text=True,
                                    timeout=900)
        except (OSError, subprocess.TimeoutExpired) as err:
            msg = f'apt-get download {package} failed ({getattr(err, "strerror", None) or err})'
            raise DemoError(msg) from None
        debs = sorted(Path(tmp).glob('*.deb'))
        if result.returncode != 0 or not debs:
            lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
            msg = f'apt-get download {package} failed ({lines[-1].strip() if lines else "no .deb"})'
            raise DemoError(msg)
        return extract_from_deb(debs[0], VTEST_MEMBER, video)
