"""Before/after of the exported confidence: two .onnx files of the same checkpoint, timed interleaved in one process.

Prints the median engine time of each (ORT CPU EP), the largest absolute confidence difference and the label
agreement on the frames given (CamVid val, or random frames without ``--images``).

    python bench/confidence_cost.py OLD.onnx NEW.onnx --images ../shared/data/camvid/val --frames 20 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import cv2
import numpy as np

from rtformer_ros.engine import SegmentationEngine


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('old', type=Path)
    p.add_argument('new', type=Path)
    p.add_argument('--images', type=Path, default=None, help='folder of frames (default: random frames)')
    p.add_argument('--frames', type=int, default=20)
    p.add_argument('--rounds', type=int, default=5, help='timing rounds, each runs every model once per frame')
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()
    if args.images:
        files = sorted(args.images.glob('*.png'))[: args.frames]
        frames = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    else:
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (360, 480, 3), np.uint8) for _ in range(args.frames)]
    engines = [SegmentationEngine(path, providers='cpu', intra_op_threads=args.threads)
               for path in (args.old, args.new)]
    times: list[list[float]] = [[], []]
    for _ in range(args.rounds):
        for frame in frames[:5]:
            for i, engine in enumerate(engines):
                times[i].append(engine.infer(frame).latency_ms)
    diff, same, total = 0.0, 0, 0
    for frame in frames:
        old, new = (engine.infer(frame) for engine in engines)
        diff = max(diff, float(np.abs(old.confidence - new.confidence).max()))
        same += int((old.labels == new.labels).sum())
        total += old.labels.size
    for path, t in zip((args.old, args.new), times, strict=True):
        print(f'{path.name}: median {statistics.median(t):.1f} ms, p90 {np.percentile(t, 90):.1f} ms ({len(t)} runs)')
    print(f'max |confidence difference| {diff:.3g} over {len(frames)} frames; labels equal {same / total:.6%}')


if __name__ == '__main__':
    main()
