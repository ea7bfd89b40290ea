"""The demo's pictures: the overlay video, GIF frames and contact-sheet rows as answers arrive, then the files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtformer_ros.demo.errors import DemoError

if TYPE_CHECKING:
    from rtformer_ros.demo.collector import Answer
    from rtformer_ros.demo.sources import SourceInfo

__all__ = ['GIF_FPS', 'Recording', 'sheet_frames', 'write_contact_sheet', 'write_gif']

GIF_SECONDS = 6.0  # video time covered by the GIF
GIF_FPS = 8.0  # at most this many GIF frames per second of video
GIF_WIDTH = 320
SHEET_ROWS = 4
SHEET_CELL_WIDTH = 320


@dataclass
class Recording:
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

    def add(self, index: int, bgr: np.ndarray, answer: Answer) -> None:
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


def sheet_frames(frames: int, fps: float, rows: int = SHEET_ROWS) -> list[int]:
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
