"""Label agreement of models/runtimes with a reference (fp32 on the ORT CPU EP), on a folder of frames.

    python bench/label_agreement.py models/rtformer_slim_camvid_360x480.onnx \\
        models/rtformer_slim_camvid_360x480.onnx:openvino models/rtformer_slim_camvid_360x480_int8.onnx:cpu \\
        models/rtformer_slim_camvid_360x480_int8.onnx:openvino --images ../shared/data/camvid/val

Each candidate is FILE[:PROVIDERS] (default cpu). Prints, per candidate, the share of pixels whose label equals the
reference's, over all frames and on the worst frame, and the largest confidence difference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.util import progress


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('reference', type=Path, help='fp32 .onnx, run on the ORT CPU EP')
    p.add_argument('candidates', nargs='+', help='FILE[:PROVIDERS]')
    p.add_argument('--images', type=Path, required=True)
    args = p.parse_args()
    files = sorted(args.images.glob('*.png'))
    reference = SegmentationEngine(args.reference, providers='cpu', warmup=0)
    engines = []
    for spec in args.candidates:
        path, _, providers = spec.partition(':')
        engines.append((spec, SegmentationEngine(path, providers=providers or 'cpu', warmup=0)))
    same = np.zeros(len(engines))
    worst = np.ones(len(engines))
    conf = np.zeros(len(engines))
    total = 0
    for file in progress(files, desc='frames'):
        frame = cv2.imread(str(file))
        ref = reference.infer(frame, 'bgr')
        total += ref.labels.size
        for i, (_, engine) in enumerate(engines):
            seg = engine.infer(frame, 'bgr')
            equal = int((seg.labels == ref.labels).sum())
            same[i] += equal
            worst[i] = min(worst[i], equal / ref.labels.size)
            if seg.confidence is not None and ref.confidence is not None:
                conf[i] = max(conf[i], float(np.abs(seg.confidence - ref.confidence).max()))
    print(f'reference {args.reference} on CPUExecutionProvider, {len(files)} frames')
    print('| candidate | runs on | labels equal | worst frame | max confidence diff |\n|---|---|---:|---:|---:|')
    for i, (spec, engine) in enumerate(engines):
        print(f'| {spec} | {engine.provider} ({engine.precision}) | {same[i] / total:.4%} | {worst[i]:.4%} | '
              f'{conf[i]:.3g} |')


if __name__ == '__main__':
    main()
