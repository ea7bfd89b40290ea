"""``rtformer bench``: latency of one frame -> labels, PyTorch eager vs ONNX Runtime providers.

Every row measures the same job: a uint8 (H, W, 3) frame in, uint8 labels at (H, W) on the host out.
PyTorch eager runs `FrameToLabels` (the module that is exported); ONNX Runtime rows run the exported graph
through `SegmentationEngine` at the model's own size (no resize), with or without I/O binding. Models are
built with random weights unless ``--checkpoint`` is given (speed does not depend on the weights).
Prints a Markdown table and the ratios the project tracks; ``--json`` writes every row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

__all__ = ['Row', 'add_arguments', 'run']

BACKENDS = ('torch', 'cpu', 'cuda', 'tensorrt')


@dataclass(frozen=True)
class Row:
    """One measured configuration."""

    variant: str
    size: str
    backend: str
    precision: str
    io_binding: bool
    threads: int
    median_ms: float
    p90_ms: float
    fps: float
    runs: int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--variants', nargs='+', default=['slim', 'base'], choices=('slim', 'base'))
    p.add_argument('--sizes', nargs='+', default=['360x480', '512x1024', '1024x2048'], help='HxW sizes')
    p.add_argument('--backends', nargs='+', default=None, choices=BACKENDS,
                   help='default: torch, cpu and every GPU provider ONNX Runtime offers here')
    p.add_argument('--fp16', action='store_true', help='also measure fp16 exports (GPU providers)')
    p.add_argument('--runs', type=int, default=10, help='timed runs per row (after warm-up)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1,
                   help='CPU threads for PyTorch and ONNX Runtime alike (default: all cores)')
    p.add_argument('--checkpoint', type=Path, default=None, help='time this checkpoint instead of random weights')
    p.add_argument('--json', type=Path, default=None, help='write rows + environment here')
    p.add_argument('--workdir', type=Path, default=None, help='keep exported graphs here (default: temp dir)')


def _time(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _row(variant: str, size: tuple[int, int], backend: str, precision: str, io_binding: bool, threads: int,
         times: list[float]) -> Row:
    median = statistics.median(times)
    p90 = float(np.percentile(times, 90))
    return Row(variant, f'{size[0]}x{size[1]}', backend, precision, io_binding, threads, round(median, 2),
               round(p90, 2), round(1e3 / median, 2), len(times))


def _environment(threads: int) -> dict:
    import onnxruntime as ort
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    env = {'cpu': cpu, 'cores': os.cpu_count(), 'threads': threads, 'torch': torch.__version__,
           'onnxruntime': ort.__version__, 'providers': ort.get_available_providers()}
    if torch.cuda.is_available():
        env['gpu'] = torch.cuda.get_device_name(0)
    return env


def run(args: argparse.Namespace) -> int:
    import torch

    from rtformer_ros.classes import get_classes
    from rtformer_ros.engine import SegmentationEngine, available_providers
    from rtformer_ros.export import FrameToLabels, export_model, parse_size
    from rtformer_ros.model import build_rtformer, load_checkpoint

    sizes = [parse_size(s) for s in args.sizes]
    gpu = [b for b, name in (('tensorrt', 'TensorrtExecutionProvider'), ('cuda', 'CUDAExecutionProvider'))
           if name in available_providers()]
    backends = args.backends or ['torch', 'cpu', *gpu]
    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix='rtformer_bench_'))
    rows: list[Row] = []
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety
        def tqdm(x, **_):  # noqa: ANN001, ANN202
            return x
    jobs = [(v, s) for v in args.variants for s in sizes]
    for variant, size in tqdm(jobs, desc='bench', unit='config'):
        if args.checkpoint:
            ckpt = load_checkpoint(args.checkpoint)
            model, classes = ckpt.model, ckpt.classes
        else:
            torch.manual_seed(0)
            model, classes = build_rtformer(f'{variant}_camvid').eval(), get_classes('camvid')
        frame = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
        if 'torch' in backends:
            wrapper = FrameToLabels(model).eval()
            tensor = torch.from_numpy(frame)[None]
            with torch.inference_mode():
                times = _time(partial(wrapper, tensor), args.runs, args.warmup)
            rows.append(_row(variant, size, 'torch-eager', 'fp32', False, args.threads, times))
        precisions = ['fp32', 'fp16'] if args.fp16 else ['fp32']
        for precision in precisions:
            path = workdir / f'{variant}_{size[0]}x{size[1]}_{precision}.onnx'
            if not path.exists():
                export_model(model, classes, path, size, fp16=precision == 'fp16')
            for backend in (b for b in backends if b != 'torch'):
                if backend == 'tensorrt' and precision == 'fp16':
                    continue  # TensorRT builds fp16 engines itself from the fp32 graph
                for binding in (False, True):
                    with SegmentationEngine(path, providers=backend, warmup=0, io_binding=binding,
                                            intra_op_threads=args.threads if backend == 'cpu' else 0) as engine:
                        times = _time(partial(engine.infer, frame), args.runs, args.warmup)
                    rows.append(_row(variant, size, f'ort-{backend}', precision, binding, args.threads, times))
    env = _environment(args.threads)
    print(_table(rows, env))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({'environment': env, 'rows': [asdict(r) for r in rows],
                                         'ratios': _ratios(rows)}, indent=2))
        print(f'\nwrote {args.json}')
    return 0


def _find(rows: list[Row], **match: object) -> Row | None:
    return next((r for r in rows if all(getattr(r, k) == v for k, v in match.items())), None)


def _ratios(rows: list[Row]) -> dict[str, float]:
    """ORT CPU speed-up over eager at 512x1024, and the 1024x2048 / 512x1024 latency ratio per backend."""
    out = {}
    for variant in sorted({r.variant for r in rows}):
        eager = _find(rows, variant=variant, size='512x1024', backend='torch-eager')
        ort_cpu = _find(rows, variant=variant, size='512x1024', backend='ort-cpu', precision='fp32', io_binding=False)
        if eager and ort_cpu:
            out[f'{variant}: eager / ort-cpu @512x1024'] = round(eager.median_ms / ort_cpu.median_ms, 2)
        for backend in sorted({r.backend for r in rows}):
            small = _find(rows, variant=variant, size='512x1024', backend=backend, precision='fp32', io_binding=False)
            big = _find(rows, variant=variant, size='1024x2048', backend=backend, precision='fp32', io_binding=False)
            if small and big:
                out[f'{variant} {backend}: 1024x2048 / 512x1024'] = round(big.median_ms / small.median_ms, 2)
    return out


def _table(rows: list[Row], env: dict) -> str:
    lines = [f'{env["cpu"]}, {env["threads"]} threads; torch {env["torch"]}, onnxruntime {env["onnxruntime"]}'
             + (f'; GPU {env["gpu"]}' if 'gpu' in env else ''), '',
             '| variant | size | backend | precision | io binding | median ms | p90 ms | FPS |',
             '|---|---|---|---|---|---:|---:|---:|']
    lines += [f'| {r.variant} | {r.size} | {r.backend} | {r.precision} | {"yes" if r.io_binding else "no"} | '
              f'{r.median_ms:.1f} | {r.p90_ms:.1f} | {r.fps:.1f} |' for r in rows]
    ratios = _ratios(rows)
    if ratios:
        lines += ['', '| ratio | value |', '|---|---:|'] + [f'| {k} | {v} |' for k, v in ratios.items()]
    return '\n'.join(lines)
