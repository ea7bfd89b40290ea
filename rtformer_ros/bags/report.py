"""Evaluation reports: ``report.json`` (machine-readable), ``report.md`` (for people) and PNG figures.

Figures: ``iou.png`` (per-class IoU bars), ``confusion.png`` (row-normalised confusion matrix),
``samples.png`` (image | ground truth | prediction for a few frames, ``image.render.contact_sheet``). Plots are
drawn with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rtformer_ros.bags.evaluate import LOW_CONFIDENCE, OVERLAY_ALPHA, EvalResult
from rtformer_ros.image.render import blend, colorize, contact_sheet, palette_lut
from rtformer_ros.util import format_stamp

__all__ = ['FIGURES', 'report_dict', 'write_report']

FIGURES = ('iou.png', 'confusion.png', 'samples.png')


def _number(value: float) -> float | None:
    """JSON has no NaN: absent values become null."""
    return None if value is None or math.isnan(value) else float(value)


def report_dict(result: EvalResult) -> dict[str, Any]:
    """Everything ``report.json`` holds."""
    cm = result.confusion
    lat = np.asarray(result.latencies_ms, np.float64)
    percentiles = dict(zip(('p50', 'p95', 'p99'), np.percentile(lat, (50, 95, 99)) if lat.size else (None,) * 3,
                           strict=True))
    latency = {key: _number(value) for key, value in percentiles.items()}
    latency['mean'] = _number(float(lat.mean())) if lat.size else None
    opts = result.options
    return {
        'miou': _number(cm.miou),
        'per_class_iou': {name: _number(v) for name, v in zip(result.class_names, cm.iou, strict=True)},
        'pixel_accuracy': _number(cm.pixel_accuracy),
        'fw_iou': _number(cm.fw_iou),
        'per_class_accuracy': {name: _number(v) for name, v in zip(result.class_names, cm.class_accuracy,
                                                                    strict=True)},
        'frames': result.frames,
        'paired': result.paired,
        'unpaired': sum(result.unpaired.values()),
        'unpaired_by_topic': dict(result.unpaired),
        'skipped': sum(result.skipped.values()),
        'skipped_by_reason': dict(result.skipped),
        'latency_ms': latency,
        'confidence': _confidence(result),
        # Engine-only rate (inference incl. pre/post-processing) and the whole run's rate (bag I/O, decoding).
        'throughput_fps': _number(1e3 * lat.size / lat.sum()) if lat.size and lat.sum() > 0 else None,
        'wall_fps': _number(result.frames / result.wall_s) if result.wall_s > 0 else None,
        'pixels': cm.total,
        'ignore_index': cm.ignore_index,
        'class_names': list(result.class_names),
        'confusion': cm.matrix.tolist(),
        'model': result.model,
        'bag': {'path': str(opts.bag), 'image_topic': opts.image_topic, 'label_topic': opts.label_topic,
                'pred_topic': opts.pred_topic},
        'write_bag': None if opts.write_bag is None else {'path': str(opts.write_bag), 'storage': opts.storage,
                                                          'messages': result.written},
        **({} if result.bags is None else {'bags': result.bags,
                                           'bags_failed': sum(1 for row in result.bags if row['error'])}),
    }


def _confidence(result: EvalResult) -> dict[str, Any] | None:
    """Confidence statistics over the scored frames, and the node's out-of-domain band they suggest.

    The node warns when the rolling mean over ``ood_window`` frames leaves the band; a rolling mean varies less
    than single frames, so bounds at the 1st/99th percentile of single frames hold for in-domain streams.
    """
    if not result.confidence:
        return None
    means, lows = np.asarray(result.confidence, np.float64).T
    low_p99 = float(np.percentile(lows, 99))
    mean_p1 = float(np.percentile(means, 1))
    return {'threshold': LOW_CONFIDENCE, 'frames': len(means), 'mean': float(means.mean()),
            'low_share': float(lows.mean()), 'frame_mean_p1': mean_p1, 'frame_low_share_p99': low_p99,
            'ood_band': {'ood_threshold': LOW_CONFIDENCE, 'ood_min_confidence': math.floor(mean_p1 * 100) / 100,
                         'ood_max_low_share': math.ceil(low_p99 * 100) / 100}}


def _fmt(value: float | None, scale: float = 100.0, digits: int = 2) -> str:
    return '–' if value is None else f'{value * scale:.{digits}f}'


def _markdown(report: dict[str, Any]) -> str:
    bag, model, lat = report['bag'], report['model'], report['latency_ms']
    source = f'`{model["path"]}` ({model["variant"]}, {model["provider"]})' if model else 'none'
    lines = [
        '# Segmentation evaluation',
        '',
        f'- {"bags" if "bags" in report else "bag"}: `{bag["path"]}`, labels `{bag["label_topic"]}`, '
        + (f'predictions `{bag["pred_topic"]}`' if bag['pred_topic'] else f'images `{bag["image_topic"]}`'),
        f'- model: {source}',
        f'- frames scored: {report["frames"]} of {report["paired"]} paired; unpaired messages: '
        f'{report["unpaired"]} {report["unpaired_by_topic"]}; skipped: {report["skipped"]} '
        f'{report["skipped_by_reason"]}',
        '',
        '| metric | value |',
        '|---|---|',
        f'| mIoU | {_fmt(report["miou"])} % |',
        f'| pixel accuracy | {_fmt(report["pixel_accuracy"])} % |',
        f'| frequency-weighted IoU | {_fmt(report["fw_iou"])} % |',
        f'| latency p50 / p95 / p99 | {_fmt(lat["p50"], 1, 1)} / {_fmt(lat["p95"], 1, 1)} / '
        f'{_fmt(lat["p99"], 1, 1)} ms |',
        f'| engine throughput | {_fmt(report["throughput_fps"], 1, 1)} FPS |',
        f'| run throughput (bag I/O included) | {_fmt(report["wall_fps"], 1, 1)} FPS |',
    ]
    conf = report['confidence']
    if conf is not None:
        band = ' '.join(f'{key}:={value}' for key, value in conf['ood_band'].items())
        lines += [
            f'| mean confidence (1st percentile of frames) | {conf["mean"]:.3f} ({conf["frame_mean_p1"]:.3f}) |',
            f'| share of pixels under {conf["threshold"]} (99th percentile of frames) | {conf["low_share"]:.3f} '
            f'({conf["frame_low_share_p99"]:.3f}) |',
            '',
            f'Out-of-domain band for rtformer_node, from these frames: `{band}` (docs/node.md).',
        ]
    lines += [
        '',
        '## Per-class IoU (%)',
        '',
        '| class | IoU | accuracy |',
        '|---|---|---|',
    ]
    for name, iou in report['per_class_iou'].items():
        lines.append(f'| {name} | {_fmt(iou)} | {_fmt(report["per_class_accuracy"][name])} |')
    lines += ['', 'A dash: the class is in neither the labels nor the predictions (left out of the mean).', '',
              '![per-class IoU](iou.png)', '', '![confusion matrix](confusion.png)', '',
              '![samples](samples.png)', '']
    if 'bags' in report:
        lines += _bag_table(report['bags'])
    return '\n'.join(lines)


def _bag_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per bag, failed ones first, then by mIoU from the worst: the recordings to look at come first."""
    lines = [f'## Per bag ({len(rows)})', '', '| bag | frames | mIoU % | pixel acc. % | note |',
             '|---|---|---|---|---|']
    for row in sorted(rows, key=lambda r: (r['error'] is None, -1.0 if r.get('miou') is None else r['miou'])):
        if row['error']:
            lines.append(f'| `{row["path"]}` | – | – | – | not scored: {row["error"]} |')
            continue
        note = f'{row["unpaired"]} unpaired, {row["skipped"]} skipped' if row['unpaired'] or row['skipped'] else ''
        lines.append(f'| `{row["path"]}` | {row["frames"]} | {_fmt(row["miou"])} | {_fmt(row["pixel_accuracy"])} '
                     f'| {note} |')
    return [*lines, '']


def _plot_iou(result: EvalResult, path: Path) -> None:
    import matplotlib.pyplot as plt

    iou = result.confusion.iou
    names = list(result.class_names)
    colors = [np.asarray(c) / 255 for c in result.palette]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.2), layout='constrained')
    ax.barh(names, np.nan_to_num(iou) * 100, color=colors, edgecolor='black', linewidth=0.5)
    for y, value in enumerate(iou):
        x = 0.0 if np.isnan(value) else value * 100
        ax.text(x + 1, y, 'absent' if np.isnan(value) else f'{x:.1f}', va='center', fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel('IoU (%)')
    ax.set_title(f'mIoU {_fmt(_number(result.confusion.miou))} % over {result.frames} frames')
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_confusion(result: EvalResult, path: Path) -> None:
    import matplotlib.pyplot as plt

    norm = result.confusion.normalized()
    names = list(result.class_names)
    k = len(names)
    side = min(16.0, 2.0 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(side, side), layout='constrained')
    image = ax.imshow(norm, cmap='Blues', vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label='share of the ground-truth class')
    if k <= 40:  # tick labels stop being readable beyond that
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
    if k <= 20:
        for row in range(k):
            for col in range(k):
                if norm[row, col] >= 0.005:
                    ax.text(col, row, f'{norm[row, col]:.2f}', ha='center', va='center', fontsize=6,
                            color='white' if norm[row, col] > 0.5 else 'black')
    ax.set_xlabel('prediction')
    ax.set_ylabel('ground truth')
    ax.set_title('Confusion matrix (rows normalised)')
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_samples(result: EvalResult, path: Path) -> None:
    from PIL import Image

    lut = palette_lut(result.palette)
    with_image = any(sample.rgb is not None for sample in result.samples)
    rows = []
    for sample in result.samples:
        pred = colorize(sample.pred, lut)
        cells = [sample.rgb] if with_image else []
        cells += [colorize(sample.labels, lut),  # ignore pixels (255) stay black
                  pred if sample.rgb is None else blend(sample.rgb, pred, OVERLAY_ALPHA)]
        rows.append((f'@ {format_stamp(sample.stamp_ns)}', cells))
    columns = (['image'] if with_image else []) + ['ground truth', 'prediction']
    Image.fromarray(contact_sheet(rows, columns)).save(path)


def write_report(result: EvalResult, out_dir: Path) -> dict[str, Any]:
    """Write report.json, report.md and the figures into ``out_dir`` (created); returns the JSON dict."""
    import matplotlib

    matplotlib.use('Agg')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = report_dict(result)
    (out_dir / 'report.json').write_text(json.dumps(report, indent=2) + '\n')
    (out_dir / 'report.md').write_text(_markdown(report))
    for name, plot in zip(FIGURES, (_plot_iou, _plot_confusion, _plot_samples), strict=True):
        plot(result, out_dir / name)
    return report
