"""The end of a run: GIF, contact sheet and ``summary.json`` from the recording, and the printed table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtformer_ros.demo.outputs import GIF_FPS, write_contact_sheet, write_gif

if TYPE_CHECKING:
    from rtformer_ros.demo.options import DemoOptions
    from rtformer_ros.demo.outputs import Recording
    from rtformer_ros.demo.sources import SourceInfo

__all__ = ['format_summary', 'write_summary']


def _float(values: dict[str, str], key: str) -> float | None:
    try:
        value = float(values[key])
    except (KeyError, ValueError):
        return None
    return round(value, 2) if math.isfinite(value) else None


def write_summary(opts: DemoOptions, model: Path, info: SourceInfo, class_info: dict, recording: Recording,
                  diagnostics: dict[str, str], sent: int, feed_s: float, wall_s: float,
                  node_exit: int) -> dict[str, Any]:
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
        ('engine p50', f'{ms(node["engine_ms_p50"])} ms (from /diagnostics)'),
        ('classes', top),
    ]
    width = max(len(key) for key, _ in rows)
    lines = [f'  {key:<{width}}  {value}' for key, value in rows]
    lines.append('files:')
    lines += [f'  {path}' for path in summary['files'].values()]
    return '\n'.join(lines)
