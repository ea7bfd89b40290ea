"""How the node's out-of-domain statistics move when frames leave the training domain.

    python bench/ood_confidence.py --images ../shared/data/camvid/val --every 4 --limit 25

Runs the engine on dataset frames as they are and altered (darkened as at night, colours inverted, upside
down) and prints, per alteration, the mean confidence and the share of pixels under the threshold: the two
values ``rtformer_node`` watches (``ood_*`` parameters, docs/node.md). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.util import progress

REPO = Path(__file__).resolve().parents[1]

ALTERATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    'as is': lambda bgr: bgr,
    'night (x0.25 brightness)': lambda bgr: (bgr * 0.25).astype(np.uint8),
    'colours inverted': lambda bgr: 255 - bgr,
    'upside down': lambda bgr: np.ascontiguousarray(bgr[::-1]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=Path, required=True, help='folder of .png/.jpg frames')
    parser.add_argument('--model', type=Path, default=REPO / 'models' / 'rtformer_slim_camvid_360x480.onnx')
    parser.add_argument('--every', type=int, default=1, help='take every n-th frame')
    parser.add_argument('--limit', type=int, default=25, help='at most this many frames')
    parser.add_argument('--threshold', type=float, default=0.5, help="the node's ood_threshold")
    parser.add_argument('--providers', default='cpu')
    args = parser.parse_args(argv)
    frames = sorted(p for p in args.images.iterdir() if p.suffix.lower() in ('.png', '.jpg', '.jpeg'))
    frames = frames[::args.every][:args.limit]
    if not frames:
        print(f'{args.images}: no .png/.jpg frames', file=sys.stderr)
        return 1
    with SegmentationEngine(args.model, providers=args.providers) as engine:
        if not engine.has_confidence:
            print(f'{args.model}: the model has no confidence output', file=sys.stderr)
            return 1
        rows = []
        for name, alter in progress(ALTERATIONS.items(), desc='alterations', unit='set'):
            means, lows = [], []
            for path in frames:
                confidence = engine.infer(alter(cv2.imread(str(path), cv2.IMREAD_COLOR)), 'bgr').confidence
                means.append(float(confidence.mean()))
                lows.append(float((confidence < args.threshold).mean()))
            rows.append((name, np.mean(means), np.mean(lows)))
    print(f'| {len(frames)} frames of {args.images.name} | mean confidence | share under {args.threshold} |')
    print('|---|---|---|')
    for name, mean, low in rows:
        print(f'| {name} | {mean:.3f} | {low:.3f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
