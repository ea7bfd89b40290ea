"""``rtformer demo``: a real street video through the real ``rtformer_node``, recorded to files.

Starts ``rtformer_node`` as its own process (as ``ros2 run`` would) in the ``/camera`` namespace, publishes a
video (or a bag's camera topic) on ``/camera/image`` as ``sensor_msgs/Image`` bgr8 with stamps from the video's
timeline, subscribes to the node's labels, colour mask, overlay, class_info and ``/diagnostics``, and writes to
``out/demo/``: ``overlay.mp4``, ``overlay.gif``, ``contact_sheet.png`` and ``summary.json`` (also printed).

The default video is OpenCV's ``vtest.avi`` (768x576, 795 frames, a pedestrian street), taken from Debian's
``opencv-doc`` package with ``apt-get download`` (no root needed) and cached in ``~/.cache/rtformer_ros/``.

Timing: lockstep by default (each frame waits for its outputs, matched by stamp, before the next is sent), so
every frame is segmented and the run is the same on any machine; ``--realtime`` publishes at the video's rate and
the node drops what it cannot keep up with, as on a robot.

Transport: frames of 768x576 rgb8/bgr8 exceed Fast DDS's default 512 KB shared-memory segment, and best-effort
samples that large are lost between processes with the default transports (docs/node.md, "Large frames"). The
demo therefore runs itself and the node with ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` unless that variable is
already set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ['VTEST_MEMBER', 'VTEST_PACKAGE', 'DemoError', 'DemoOptions', 'SourceInfo', 'add_arguments', 'cache_dir',
           'extract_from_deb', 'fetch_vtest', 'format_summary', 'main', 'run', 'run_demo', 'write_contact_sheet',
           'write_gif']

VTEST_PACKAGE = 'opencv-doc'
VTEST_MEMBER = './usr/share/doc/opencv-doc/examples/data/vtest.avi'
NAMESPACE = '/camera'
FRAME_ID = 'camera'
IMAGE_TOPIC = f'{NAMESPACE}/image'
STATUS_NAME = 'rtformer_node: image'  # the node's DiagnosticStatus name for a single camera
OUTPUTS = ('labels', 'color', 'overlay')  # node topics recorded (colour and overlay exist only while subscribed)
RESEND_S = 2.0  # lockstep: publish a frame again after this long without its outputs
MAX_MISSES = 3  # lockstep: frames in a row without outputs before the demo gives up
GIF_SECONDS = 6.0  # video time covered by the GIF
GIF_FPS = 8.0  # at most this many GIF frames per second of video
GIF_WIDTH = 320
SHEET_ROWS = 4
SHEET_CELL_WIDTH = 320
DEFAULT_FPS = 30.0  # a video that declares no frame rate


class DemoError(RuntimeError):
    """The demo cannot run: no video, no model, or the node did not start or answer."""


# ------------------------------------------------------------------------------------------------ the video

def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rtformer_ros`` (default ``~/.cache/rtformer_ros``)."""
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'rtformer_ros'


def extract_from_deb(deb: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a Debian package (``dpkg-deb --fsys-tarfile``, read as a tar stream).

    Args:
        deb: the ``.deb`` file.
        member: path inside the package as ``dpkg-deb`` lists it (``./usr/...``; ``usr/...`` works too).
        dest: where the file goes; written to a temporary name first, so a broken run leaves nothing behind.

    Raises:
        DemoError: dpkg-deb is missing or fails, or the package has no such file.
    """
    wanted = member.removeprefix('./')
    partial = dest.with_name(dest.name + '.part')
    try:
        proc = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', str(deb)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as err:
        msg = f'{deb}: cannot run dpkg-deb ({err.strerror})'
        raise DemoError(msg) from None
    found = False
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode='r|') as tar:
            for info in tar:
                if info.isfile() and info.name.removeprefix('./') == wanted:
                    source = tar.extractfile(info)
                    assert source is not None
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with partial.open('wb') as out:
                        shutil.copyfileobj(source, out)
                    found = True
                    break
    except tarfile.TarError as err:
        partial.unlink(missing_ok=True)
        msg = f'{deb}: not a readable Debian package ({err})'
        raise DemoError(msg) from None
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        error = proc.stderr.read().decode(errors='replace').strip() if proc.stderr else ''
        code = proc.wait()
    if not found:
        reason = error.splitlines()[-1] if code and error else f'no file {member} in it'
        msg = f'{deb}: {reason}'
        raise DemoError(msg)
    partial.replace(dest)
    return dest


def fetch_vtest(cache: Path | None = None, package: str = VTEST_PACKAGE) -> Path:
    """``vtest.avi`` in the cache, downloaded (``apt-get download``) and extracted on first use.

    Only the video is kept; the ~96 MB package is deleted once the file is out.

    Raises:
        DemoError: apt-get or dpkg-deb is missing, the download fails (no package lists, no network), or the
            package does not hold the file.
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


class SourceInfo(NamedTuple):
    """What is fed to the node."""

    name: str  # file, or bag:topic
    width: int
    height: int
    fps: float
    frames: int  # frames that will be sent (after --max-frames); 0: unknown


class _Source:
    """Frames as (index, stamp in ns, BGR pixels); ``info`` describes them."""

    info: SourceInfo

    def frames(self) -> Iterator[tuple[int, int, np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""


class _VideoSource(_Source):
    """A video file read by OpenCV; stamps are the frame times on the video's timeline (index / fps)."""

    def __init__(self, path: Path, max_frames: int) -> None:
        import cv2

        if not path.is_file():
            msg = f'{path}: no such video file'
            raise DemoError(msg)
        self._capture = cv2.VideoCapture(str(path))
        ok, first = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok:
            self._capture.release()
            msg = f'{path}: OpenCV cannot read a frame of it (not a video, or an unsupported codec)'
            raise DemoError(msg)
        self._first = first
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        count = max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # 0: the container does not say
        self._limit = max_frames if max_frames > 0 else sys.maxsize
        frames = min(count, self._limit) if count else max_frames
        self.info = SourceInfo(str(path), first.shape[1], first.shape[0], self._fps, frames)

    def frames(self) -> Iterator[tuple[int, int, np.ndarray]]:
        frame, index = self._first, 0
        while frame is not None and index < self._limit:
            yield index, round(index * 1e9 / self._fps), frame
            index += 1
            ok, frame = self._capture.read()
            if not ok:
                break

    def close(self) -> None:
        self._capture.release()


class _BagSource(_Source):
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
            stamps: list[int] = []
            for _, _, raw in self._reader.messages([self.topic]):
                stamps.append(header_stamp_ns(raw))
                if len(stamps) >= 30:
                    break
            first = next(self.frames())[2]
        except (BagError, StopIteration) as err:
            self._reader.close()
            msg = f'{path}: {err}' if isinstance(err, BagError) else f'{path}: no frames on {self.topic}'
            raise DemoError(msg) from None
        steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a)
        fps = 1e9 / steps[len(steps) // 2] if steps else DEFAULT_FPS
        self.info = SourceInfo(f'{path}:{self.topic}', first.shape[1], first.shape[0], fps, self._limit)

    def frames(self) -> Iterator[tuple[int, int, np.ndarray]]:
        from rtformer_ros.bags.errors import BagError
        from rtformer_ros.bags.reader import header_stamp_ns
        from rtformer_ros.ros.codec import CodecError, decode_compressed, decode_image

        index = 0
        for _, _, raw in self._reader.messages([self.topic]):
            if index >= self._limit:
                break
            try:
                msg = self._reader.deserialize(raw, self.topic)
                decoded = decode_compressed(msg) if hasattr(msg, 'format') else decode_image(msg)
            except (BagError, CodecError) as err:
                text = f'{self._reader.path}: {self.topic}: {err}'
                raise DemoError(text) from None
            bgr = decoded.image if decoded.color_order == 'bgr' else np.ascontiguousarray(decoded.image[:, :, ::-1])
            yield index, header_stamp_ns(raw), bgr
            index += 1

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
    listing = ', '.join(images) or 'none'
    msg = f'{path}: pass --image-topic (camera topics found: {listing})'
    raise DemoError(msg)


# ------------------------------------------------------------------------------------------------ the node

def _resolve_model(model: str | None) -> Path:
    """The model file; None: the node's default (the shipped CamVid model)."""
    from rtformer_ros.ros.node import NodeError, resolve_model
    from rtformer_ros.ros.params import DEFAULT_MODEL

    model = model or DEFAULT_MODEL
    try:
        return resolve_model(model).resolve()
    except NodeError as err:
        if model == DEFAULT_MODEL:
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


class _Answer(NamedTuple):
    stamp_ns: int
    labels: np.ndarray  # (H, W) class ids
    color: np.ndarray  # (H, W, 3) RGB
    overlay: np.ndarray  # (H, W, 3) RGB
    latency_ms: float  # publish -> labels received


class _Collector:
    """The node's outputs by stamp, for the frames this demo sent. Callbacks run on the probe's executor thread
    and only keep references; everything else happens in the main thread."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sent_at: dict[int, float] = {}  # stamp -> time.monotonic() of its first publish
        self._labels_at: dict[int, float] = {}
        self._parts: dict[int, dict[str, np.ndarray]] = {}
        self._done: dict[int, _Answer] = {}
        self.diagnostics: dict[str, str] | None = None

    def expect(self, stamp: int) -> None:
        """Collect the outputs of ``stamp`` from now on (call before publishing it)."""
        with self._changed:
            self._sent_at.setdefault(stamp, time.monotonic())

    def on_output(self, kind: str, msg: Any) -> None:
        """Subscription callback of output ``kind`` (one of ``OUTPUTS``)."""
        from rtformer_ros.ros.codec import decode_image, decode_labels

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
                self._done[stamp] = _Answer(stamp, parts['labels'], parts['color'], parts['overlay'], latency)
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

    def pop_done(self) -> list[_Answer]:
        """Answers complete so far, oldest first; forgets the frames before them (the node dropped those)."""
        with self._changed:
            answers = [self._done.pop(stamp) for stamp in sorted(self._done)]
            if answers:
                newest = answers[-1].stamp_ns
                for table in (self._sent_at, self._labels_at, self._parts):
                    for stamp in [s for s in table if s <= newest]:
                        del table[stamp]
            return answers


# ------------------------------------------------------------------------------------------------ outputs

@dataclass
class _Recording:
    """What the main thread makes of the answers: video, GIF frames, contact-sheet rows, statistics."""

    out: Path
    info: SourceInfo
    sheet_targets: list[int]  # frame indices wanted in the contact sheet
    writer: Any = None
    written: int = 0  # video frames written (realtime: dropped frames repeat the previous one)
    last_index: int = -1
    histogram: np.ndarray | None = None
    latencies_ms: list[float] = field(default_factory=list)
    gif: list[np.ndarray] = field(default_factory=list)
    sheet: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, index: int, bgr: np.ndarray, answer: _Answer) -> None:
        """Frame ``index`` (its BGR input) and the node's answer."""
        import cv2

        overlay_bgr = cv2.cvtColor(answer.overlay, cv2.COLOR_RGB2BGR)
        if self.writer is None:
            path = self.out / 'overlay.mp4'
            self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), self.info.fps,
                                          (overlay_bgr.shape[1], overlay_bgr.shape[0]))
            if not self.writer.isOpened():
                msg = f'{path}: OpenCV cannot write an mp4v video here'
                raise DemoError(msg)
        for _ in range(max(1, index - self.last_index)):  # keep the video's timing when frames were dropped
            self.writer.write(overlay_bgr)
            self.written += 1
        self.last_index = index
        counts = np.bincount(answer.labels.ravel(), minlength=256)
        self.histogram = counts if self.histogram is None else self.histogram + counts
        self.latencies_ms.append(answer.latency_ms)
        step = max(1, round(self.info.fps / GIF_FPS))
        if not self.gif or (index < GIF_SECONDS * self.info.fps and index % step == 0):
            self.gif.append(_thumbnail(answer.overlay, GIF_WIDTH))
        filled = len(self.sheet)
        if filled < len(self.sheet_targets) and index >= self.sheet_targets[filled]:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self.sheet.append((index, *(_thumbnail(image, SHEET_CELL_WIDTH)
                                        for image in (rgb, answer.color, answer.overlay))))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def _thumbnail(rgb: np.ndarray, width: int) -> np.ndarray:
    import cv2

    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _sheet_targets(frames: int, fps: float, rows: int = SHEET_ROWS) -> list[int]:
    """Frame indices spread over the video, first and last included (length unknown: one every 10 s)."""
    if frames <= 0:
        return [round(i * 10 * fps) for i in range(rows)]
    count = min(rows, frames)
    return sorted({round(i * (frames - 1) / max(count - 1, 1)) for i in range(count)})


def write_gif(frames: list[np.ndarray], path: Path, frame_ms: float) -> Path:
    """An endlessly looping GIF of RGB ``frames`` shown ``frame_ms`` each (Pillow)."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(frame_ms)), loop=0)
    return path


def write_contact_sheet(rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], classes: list[dict],
                        title: str, fps: float, path: Path, shown: set[int] | None = None) -> Path:
    """Rows of input | colour mask | overlay, a title and a legend of class colours and names (PNG, Pillow).

    Args:
        rows: (frame index, input, colour, overlay) with RGB pictures of one size.
        classes: ``class_info`` entries (``id``, ``name``, ``color``).
        title: first line (model, provider).
        fps: for the frame times.
        path: PNG to write.
        shown: class ids in the legend (None: all).
    """
    from PIL import Image, ImageDraw, ImageFont

    cell_h, cell_w = rows[0][1].shape[:2]
    width, header_h, line_h, per_row = 3 * cell_w, 48, 24, 4
    items = [c for c in classes if shown is None or c['id'] in shown]
    legend_h = 12 + line_h * math.ceil(len(items) / per_row)
    body = np.concatenate([np.concatenate(cells, axis=1) for _, *cells in rows], axis=0)
    sheet = np.full((header_h + body.shape[0] + legend_h, width, 3), 32, np.uint8)
    sheet[header_h:header_h + body.shape[0]] = body
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)

    def text(xy: tuple[int, int], value: str) -> None:  # outlined: readable on any picture
        draw.text(xy, value, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))

    text((8, 4), title)
    for column, name in enumerate(('input', 'colour mask (node)', 'overlay (node)')):
        text((column * cell_w + 8, 26), name)
    for row, (index, *_) in enumerate(rows):
        text((8, header_h + (row + 1) * cell_h - 24), f'frame {index}  ({index / fps:.1f} s)')
    top = header_h + body.shape[0] + 8
    for i, item in enumerate(items):
        x, y = (i % per_row) * (width // per_row) + 8, top + (i // per_row) * line_h
        draw.rectangle((x, y, x + 18, y + 16), fill=tuple(int(v) for v in item['color']), outline=(200, 200, 200))
        text((x + 26, y), f'{item["id"]} {item["name"]}')
    try:
        image.save(path, format='PNG')
    except OSError as err:
        msg = f'{path}: cannot write the PNG ({err})'
        raise DemoError(msg) from None
    return path


# ------------------------------------------------------------------------------------------------ the run

@dataclass(frozen=True)
class DemoOptions:
    """See ``rtformer demo --help``.

    Attributes:
        video: a video file (None: vtest.avi, or ``bag``).
        bag: a rosbag2 to take frames from instead of a video.
        image_topic: the bag's camera topic (default: ``/camera/image_raw`` or the only camera topic).
        model: exported .onnx path or a name in the package's models/ folder (None: the node's default).
        providers: the node's ``providers`` parameter.
        out: folder for the files.
        max_frames: at most this many frames (0: all).
        realtime: publish at the video's rate instead of lockstep.
        timeout_s: lockstep: give up on a frame after this long; realtime: wait this long for the last one.
        wait_s: how long the node may take to start and answer a first frame.
        progress: tqdm bar (None: only on a terminal).
    """

    video: Path | None = None
    bag: Path | None = None
    image_topic: str | None = None
    model: str | None = None
    providers: str = 'auto'
    out: Path = Path('out/demo')
    max_frames: int = 0
    realtime: bool = False
    timeout_s: float = 20.0
    wait_s: float = 120.0
    progress: bool | None = None


def _open_source(opts: DemoOptions) -> _Source:
    if opts.video is not None and opts.bag is not None:
        msg = 'pass either --video or --bag, not both'
        raise DemoError(msg)
    if opts.bag is not None:
        return _BagSource(opts.bag, opts.image_topic, opts.max_frames)
    if opts.video is not None:
        return _VideoSource(opts.video, opts.max_frames)
    try:
        video = fetch_vtest()
    except DemoError as err:
        msg = f'no demo video: {err}; pass --video FILE (any video OpenCV reads) or --bag BAG'
        raise DemoError(msg) from None
    return _VideoSource(video, opts.max_frames)


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

    def __init__(self, node: Any, probe: Any, opts: DemoOptions, recording: _Recording) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from rtformer_ros.ros.qos import LATCHED_QOS, OUTPUT_QOS

        self.node, self.probe, self.opts, self.recording = node, probe, opts, recording
        self.collector = _Collector()
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

        from rtformer_ros.ros.codec import image_message

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
    recording = _Recording(opts.out, info, _sheet_targets(info.frames, info.fps))
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
    return _finish(opts, model, info, class_info, recording, diagnostics, session.sent, feed_s,
                   time.monotonic() - start, node_exit)


def _float(values: dict[str, str], key: str) -> float | None:
    try:
        value = float(values[key])
    except (KeyError, ValueError):
        return None
    return round(value, 2) if math.isfinite(value) else None


def _finish(opts: DemoOptions, model: Path, info: SourceInfo, class_info: dict, recording: _Recording,
            diagnostics: dict[str, str], sent: int, feed_s: float, wall_s: float, node_exit: int) -> dict[str, Any]:
    """Write the GIF, contact sheet and summary.json; the summary."""

    out = opts.out
    received = len(recording.latencies_ms)
    gif = write_gif(recording.gif, out / 'overlay.gif', 1e3 * max(1, round(info.fps / GIF_FPS)) / info.fps)
    histogram = recording.histogram if recording.histogram is not None else np.zeros(256, np.int64)
    total = int(histogram.sum())
    names = {c['id']: c['name'] for c in class_info['classes']}
    names.setdefault(int(class_info.get('ignore_index', 255)), 'ignore')
    shares = {names.get(i, f'class {i}'): round(int(n) / total, 5) for i, n in enumerate(histogram) if n}
    shares = dict(sorted(shares.items(), key=lambda kv: -kv[1]))
    seen = {i for i, n in enumerate(histogram) if n}
    shown = None if len(class_info['classes']) <= 40 else seen
    provider = diagnostics.get('provider', '?')
    sheet = write_contact_sheet(recording.sheet, class_info['classes'],
                                f'{model.name}  ({class_info.get("variant")}, {class_info.get("dataset")}) '
                                f'on {provider}', info.fps, out / 'contact_sheet.png', shown)
    latencies = np.asarray(recording.latencies_ms)
    summary: dict[str, Any] = {
        'source': info.name,
        'size': [info.width, info.height],
        'video_fps': round(info.fps, 3),
        'model': str(model),
        'variant': class_info.get('variant'),
        'dataset': class_info.get('dataset'),
        'provider': provider,
        'mode': 'realtime' if opts.realtime else 'lockstep',
        'frames_sent': sent,
        'frames_received': received,
        'frames_missed': sent - received,
        'video_frames_written': recording.written,
        'seconds': round(feed_s, 2),
        'wall_s': round(wall_s, 2),
        'fps': round(received / feed_s, 2) if feed_s > 0 else None,
        'latency_ms': {'p50': round(float(np.percentile(latencies, 50)), 2),
                       'p95': round(float(np.percentile(latencies, 95)), 2),
                       'what': 'publish -> labels received, measured by the demo'},
        'node': {'latency_ms_p50': _float(diagnostics, 'latency_ms_p50'),
                 'latency_ms_p95': _float(diagnostics, 'latency_ms_p95'),
                 'engine_ms_p50': _float(diagnostics, 'infer_ms_p50'),
                 'decode_ms_p50': _float(diagnostics, 'decode_ms_p50'),
                 'extras_ms_p50': _float(diagnostics, 'extras_ms_p50'),
                 'served': int(diagnostics.get('served', 0)),
                 'dropped_stale': int(diagnostics.get('dropped_stale', 0)),
                 'what': 'from /diagnostics, last 300 frames (warm-up frame included)',
                 'exit_code': node_exit},
        'class_share': shares,
        'files': {'video': str(out / 'overlay.mp4'), 'gif': str(gif), 'contact_sheet': str(sheet),
                  'summary': str(out / 'summary.json')},
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The printed table."""
    node = summary['node']

    def ms(value: float | None) -> str:
        return 'n/a' if value is None else f'{value:.1f}'

    top = ', '.join(f'{name} {share:.0%}' for name, share in list(summary['class_share'].items())[:6])
    rows = [
        ('source', f'{summary["source"]} ({summary["size"][0]}x{summary["size"][1]}, {summary["video_fps"]:g} fps)'),
        ('model', f'{Path(summary["model"]).name} ({summary["variant"]}, {summary["dataset"]})'),
        ('provider', summary['provider']),
        ('mode', summary['mode']),
        ('frames', f'{summary["frames_sent"]} sent, {summary["frames_received"]} received'),
        ('fps', f'{summary["fps"]} (received frames / {summary["seconds"]} s)'),
        ('latency p50/p95', f'{ms(summary["latency_ms"]["p50"])} / {ms(summary["latency_ms"]["p95"])} ms '
                            '(publish -> labels back, incl. transport)'),
        ('node p50/p95', f'{ms(node["latency_ms_p50"])} / {ms(node["latency_ms_p95"])} ms (callback -> labels)'),
        ('engine p50', f'{ms(node["engine_ms_p50"])} ms (ONNX Runtime, diagnostics)'),
        ('classes', top),
    ]
    width = max(len(key) for key, _ in rows)
    lines = [f'  {key:<{width}}  {value}' for key, value in rows]
    lines.append('files:')
    lines += [f'  {path}' for path in summary['files'].values()]
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------------ command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rtformer demo``."""
    source = parser.add_argument_group('input (default: OpenCV vtest.avi, fetched once into ~/.cache/rtformer_ros)')
    source.add_argument('--video', type=Path, default=None, help='a video file OpenCV reads')
    source.add_argument('--bag', type=Path, default=None, help='a rosbag2 (folder, .db3 or .mcap) with a camera topic')
    source.add_argument('--image-topic', default=None,
                        help='camera topic in --bag (default: /camera/image_raw, or the only camera topic)')
    parser.add_argument('--model', default=None,
                        help="exported .onnx, or a name in the package's models/ (default: the node's, the shipped "
                             'RTFormer-Slim CamVid 360x480)')
    parser.add_argument('--providers', default='auto', choices=('auto', 'cpu', 'cuda', 'tensorrt'),
                        help='ONNX Runtime provider of the node (auto: TensorRT, CUDA, else CPU)')
    parser.add_argument('--out', type=Path, default=Path('out/demo'), help='output folder (default: %(default)s)')
    parser.add_argument('--max-frames', type=int, default=0, help='at most this many frames (default: all)')
    parser.add_argument('--realtime', action='store_true',
                        help="publish at the video's frame rate (the node drops what it cannot keep up with) "
                             'instead of lockstep (each frame waits for its outputs)')
    parser.add_argument('--timeout', type=float, default=20.0,
                        help='seconds to wait for the outputs of one frame (default: %(default)s)')
    parser.add_argument('--wait', type=float, default=120.0,
                        help='seconds the node may take to start and answer its first frame (a first TensorRT '
                             'build takes minutes; default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    """``rtformer demo``: run, print the summary and where the files are. Exit 1 with one line on error."""
    from rtformer_ros.bags.errors import BagError

    opts = DemoOptions(video=args.video, bag=args.bag, image_topic=args.image_topic, model=args.model,
                       providers=args.providers, out=args.out, max_frames=args.max_frames, realtime=args.realtime,
                       timeout_s=args.timeout, wait_s=args.wait, progress=False if args.no_progress else None)
    try:
        if opts.max_frames < 0 or opts.timeout_s <= 0 or opts.wait_s <= 0:
            msg = (f'--max-frames must be >= 0, --timeout and --wait > 0, got {opts.max_frames}, '
                   f'{opts.timeout_s:g} and {opts.wait_s:g}')
            raise DemoError(msg)
        summary = run_demo(opts)
    except (DemoError, BagError) as err:
        print(f'rtformer demo: {err}', file=sys.stderr)
        return 1
    except OSError as err:  # an output folder or cache that cannot be written
        where = f'{err.filename}: ' if err.filename else ''
        print(f'rtformer demo: {where}{err.strerror or err}', file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rtformer_ros.demo`` (the same as ``rtformer demo``)."""
    parser = argparse.ArgumentParser(prog='rtformer demo', description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
