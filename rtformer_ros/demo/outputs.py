"""The demo's files from the node's answers (video as they arrive; GIF, contact sheet, summary.json at the end)."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from rtformer_ros.demo.command import DemoError
from rtformer_ros.demo.sources import Source
from rtformer_ros.image.render import contact_sheet, thumbnail

__all__ = ['Recording', 'format_summary', 'write_summary']

GIF_SECONDS = 6.0  # video time covered by the GIF
GIF_FPS = 8.0  # at most this many GIF frames per second of video
SHEET_ROWS = 4
NODE_TIMES = {'latency_ms_p50': 'latency_ms_p50', 'latency_ms_p95': 'latency_ms_p95', 'engine_ms_p50': 'infer_ms_p50',
              'decode_ms_p50': 'decode_ms_p50', 'extras_ms_p50': 'extras_ms_p50'}  # summary key -> diagnostics key


@dataclass
class Recording:
    """The answers as they arrive (main thread): video frames, GIF frames, contact-sheet rows, statistics."""

    out: Path
    source: Source
    writer: Any = None
    written: int = 0  # video frames written (realtime: dropped frames repeat the previous one)
    last_index: int = -1
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    latencies_ms: list[float] = field(default_factory=list)
    gif: list[np.ndarray] = field(default_factory=list)
    sheet: list[tuple[int, list[np.ndarray]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        frames, fps = self.source.frames, self.source.fps
        self.gif_step = max(1, round(fps / GIF_FPS))  # every n-th frame goes into the GIF
        # Contact-sheet frames spread over the video, first and last included (length unknown: one every 10 s).
        count = min(SHEET_ROWS, frames) if frames > 0 else SHEET_ROWS
        self.sheet_targets = (sorted({round(i * (frames - 1) / max(count - 1, 1)) for i in range(count)})
                              if frames > 0 else [round(i * 10 * fps) for i in range(count)])

    def add(self, index: int, bgr: np.ndarray, labels: np.ndarray, color: np.ndarray, overlay: np.ndarray,
            latency_ms: float) -> None:
        """Frame ``index`` (its BGR input) and the node's answer (RGB colour mask and overlay)."""
        overlay_bgr = cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
        if self.writer is None:
            path = self.out / 'overlay.mp4'
            self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), self.source.fps,
                                          (overlay_bgr.shape[1], overlay_bgr.shape[0]))
            if not self.writer.isOpened():
                msg = f'{path}: OpenCV cannot write an mp4v video here'
                raise DemoError(msg)
        for _ in range(max(1, index - self.last_index)):  # keep the video's timing when frames were dropped
            self.writer.write(overlay_bgr)
            self.written += 1
        self.last_index = index
        self.histogram += np.bincount(labels.ravel(), minlength=256)
        self.latencies_ms.append(latency_ms)
        if not self.gif or (index < GIF_SECONDS * self.source.fps and index % self.gif_step == 0):
            self.gif.append(thumbnail(overlay))
        if len(self.sheet) < len(self.sheet_targets) and index >= self.sheet_targets[len(self.sheet)]:
            self.sheet.append((index, [thumbnail(im) for im in (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), color, overlay)]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def _float(values: dict[str, str], key: str) -> float | None:
    try:
        value = float(values[key])
    except (KeyError, ValueError):
        return None
    return round(value, 2) if math.isfinite(value) else None


def write_summary(args: argparse.Namespace, model: Path, recording: Recording, class_info: dict,
                  diagnostics: dict[str, str], sent: int, feed_s: float, wall_s: float,
                  node_exit: int) -> dict[str, Any]:
    """Write the GIF, contact sheet and summary.json; the summary."""
    out, info = args.out, recording.source
    gif, sheet = out / 'overlay.gif', out / 'contact_sheet.png'
    frames = [Image.fromarray(frame) for frame in recording.gif]
    frames[0].save(gif, save_all=True, append_images=frames[1:], loop=0,
                   duration=max(20, round(1e3 * recording.gif_step / info.fps)))
    histogram = recording.histogram
    names = {c['id']: c['name'] for c in class_info['classes']}
    names.setdefault(int(class_info.get('ignore_index', 255)), 'ignore')
    shares = {names.get(i, f'class {i}'): round(int(n) / int(histogram.sum()), 5) for i, n in enumerate(histogram) if n}
    provider = diagnostics.get('provider', '?')
    legend = [c for c in class_info['classes'] if len(class_info['classes']) <= 40 or histogram[c['id']]]
    rows = [(f'frame {index}  ({index / info.fps:.1f} s)', cells) for index, cells in recording.sheet]
    title = f'{model.name}  ({class_info.get("variant")}, {class_info.get("dataset")}) on {provider}'
    Image.fromarray(contact_sheet(rows, ('input', 'colour mask (node)', 'overlay (node)'), title, legend)).save(sheet)
    latencies = np.asarray(recording.latencies_ms)
    received = len(latencies)
    summary: dict[str, Any] = {
        'source': info.name, 'size': [info.width, info.height], 'video_fps': round(info.fps, 3),
        'model': str(model), 'variant': class_info.get('variant'), 'dataset': class_info.get('dataset'),
        'provider': provider, 'mode': 'realtime' if args.realtime else 'lockstep',
        'frames_sent': sent, 'frames_received': received, 'frames_missed': sent - received,
        'video_frames_written': recording.written, 'seconds': round(feed_s, 2), 'wall_s': round(wall_s, 2),
        'fps': round(received / feed_s, 2) if feed_s > 0 else None,
        'latency_ms': {'p50': round(float(np.percentile(latencies, 50)), 2),
                       'p95': round(float(np.percentile(latencies, 95)), 2),
                       'what': 'publish -> labels received, measured by the demo'},
        'node': {**{name: _float(diagnostics, key) for name, key in NODE_TIMES.items()},
                 'served': int(diagnostics.get('served', 0)),
                 'dropped_stale': int(diagnostics.get('dropped_stale', 0)),
                 'what': 'from /diagnostics, last 300 frames (warm-up frame included)',
                 'exit_code': node_exit},
        'class_share': dict(sorted(shares.items(), key=lambda kv: -kv[1])),
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
        ('engine p50', f'{ms(node["engine_ms_p50"])} ms (from /diagnostics)'),
        ('classes', top),
    ]
    width = max(len(key) for key, _ in rows)
    lines = [f'  {key:<{width}}  {value}' for key, value in rows]
    lines.append('files:')
    lines += [f'  {path}' for path in summary['files'].values()]
    return '\n'.join(lines)
