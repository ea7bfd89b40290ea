"""``rtformer bench``: latency of one frame -> labels, PyTorch eager vs ONNX Runtime providers and OpenVINO.

Every row measures the same job: a uint8 (H, W, 3) frame in, uint8 labels at (H, W) on the host out.
PyTorch eager runs `FrameToLabels` (the module that is exported); the other rows run the exported graph
through `SegmentationEngine` at the model's own size (no resize), with or without I/O binding (ORT), on ORT
providers or OpenVINO (bf16 where the CPU has it, and forced fp32). ``--int8`` adds `rtformer quantize`d files
of every export; ``--models`` times given files (e.g. the shipped model) too. Models are built with random
weights unless ``--checkpoint`` is given (speed does not depend on the weights).

The rows of one (variant, size) or one file are timed interleaved, one run of each in turn, so load from other
processes hits them alike: compare rows of one run, not figures of different runs.
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
from typing import Any

import numpy as np

from rtformer_ros.commands import model_size
from rtformer_ros.errors import RtformerError
from rtformer_ros.util import progress

__all__ = ['HELP', 'NAME', 'BenchError', 'Row', 'add_arguments', 'run']

NAME = 'bench'
HELP = 'latency/FPS of PyTorch eager and ONNX Runtime providers (table + JSON)'

BACKENDS = ('torch', 'cpu', 'openvino', 'openvino-bf16', 'openvino-fp32', 'cuda', 'tensorrt')


class BenchError(RtformerError, ValueError):
    """Options that cannot be measured."""


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
    p.add_argument('--variants', nargs='*', default=None, choices=('slim', 'base'),
                   help='exported with random weights at every --sizes (default: slim base, none with --models)')
    p.add_argument('--sizes', nargs='+', type=model_size, default=[(360, 480), (512, 1024), (1024, 2048)],
                   help='HxW sizes (default: 360x480 512x1024 1024x2048)')
    p.add_argument('--backends', nargs='+', default=None, choices=BACKENDS,
                   help='default: torch, cpu, OpenVINO (both precisions) where installed, and every GPU provider '
                        'ONNX Runtime offers here')
    p.add_argument('--fp16', action='store_true', help='also measure fp16 exports (GPU providers)')
    p.add_argument('--int8', action='store_true', help='also measure INT8 (rtformer quantize) of every export')
    p.add_argument('--models', nargs='*', type=Path, default=[],
                   help='also time these exported .onnx files (all of one input size, timed interleaved)')
    p.add_argument('--no-io-binding', action='store_true', help='skip the ORT I/O-binding rows')
    p.add_argument('--runs', type=int, default=10, help='timed runs per row (after warm-up)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1,
                   help='CPU threads for PyTorch and ONNX Runtime alike (default: all cores)')
    p.add_argument('--checkpoint', type=Path, default=None, help='time this checkpoint instead of random weights')
    p.add_argument('--json', type=Path, default=None, help='write rows + environment here')
    p.add_argument('--workdir', type=Path, default=None, help='keep exported graphs here (default: temp dir)')


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


def _interleaved(fns: list[Callable[[], object]], runs: int, warmup: int) -> list[list[float]]:
    """Time each of ``fns`` ``runs`` times, one call of each in turn, after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return times


@dataclass(frozen=True)
class _Timed:
    """One engine to time, and how its row is labelled."""

    engine: Any
    variant: str
    backend: str
    precision: str
    io_binding: bool


def _engines(paths: dict[str, Path], variant: str | None, backends: list[str], threads: int,
             io_binding: bool) -> list[_Timed]:
    """An engine for every file x backend that applies. ``variant`` None: the rows are named after the files
    (``paths`` keys) and take their precision from the metadata; else the keys are the precisions."""
    from rtformer_ros.engine import SegmentationEngine

    out = []
    for key, path in paths.items():
        seen = set()
        for backend in backends:
            if backend == 'tensorrt' and key == 'fp16':
                continue  # TensorRT builds fp16 engines itself from the fp32 graph
            bindings = (False, True) if io_binding and not backend.startswith('openvino') else (False,)
            for binding in bindings:
                # No spinning: ORT's idle threads would busy-wait into the next row's run (and the node
                # runs without spinning too).
                engine = SegmentationEngine(path, providers=backend, warmup=0, io_binding=binding,
                                            intra_op_threads=threads if backend not in ('cuda', 'tensorrt') else 0,
                                            allow_spinning=False)
                label = f'openvino-{engine.precision}' if backend.startswith('openvino') else f'ort-{backend}'
                if (label, binding) in seen:  # 'openvino' runs what 'openvino-bf16' or '-fp32' runs
                    engine.close()
                    continue
                seen.add((label, binding))
                if variant is None:
                    out.append(_Timed(engine, f'{engine.metadata.variant} ({key})', label, engine.metadata.precision,
                                      binding))
                else:
                    out.append(_Timed(engine, variant, label, key, binding))
    return out


def run(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.threads < 1 or args.warmup < 0:
        msg = f'--runs and --threads must be >= 1, --warmup >= 0, got {args.runs}, {args.threads} and {args.warmup}'
        raise BenchError(msg)
    import torch

    from rtformer_ros.engine import OPENVINO, available_providers
    from rtformer_ros.export import FrameToLabels

    present = available_providers()
    gpu = [b for b, name in (('tensorrt', 'TensorrtExecutionProvider'), ('cuda', 'CUDAExecutionProvider'))
           if name in present]
    openvino = ['openvino-bf16', 'openvino-fp32'] if OPENVINO in present else []
    backends = args.backends or ['torch', 'cpu', *openvino, *gpu]
    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix='rtformer_bench_'))
    rows: list[Row] = []
    variants = args.variants if args.variants is not None else [] if args.models else ['slim', 'base']
    jobs: list[tuple[str | None, tuple[int, int] | None]] = [(v, s) for v in variants for s in args.sizes]
    jobs += [(None, None)] if args.models else []  # the --models files, timed together
    engine_backends = [b for b in backends if b != 'torch']
    for variant, size in progress(jobs, desc='bench', unit='config'):
        paths = {p.name: p for p in args.models} if variant is None else _exports(args, variant, size, workdir)
        timed = _engines(paths, variant, engine_backends, args.threads, not args.no_io_binding)
        size = size or timed[0].engine.input_size
        frame = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
        fns = [partial(t.engine.infer, frame) for t in timed]
        labels = [(t.variant, t.backend, t.precision, t.io_binding) for t in timed]
        if 'torch' in backends and variant is not None:
            model = _model(args, variant)[0]
            wrapper = FrameToLabels(model).eval()
            tensor = torch.from_numpy(frame)[None]

            def eager(wrapper: FrameToLabels = wrapper, tensor: torch.Tensor = tensor) -> None:
                with torch.inference_mode():
                    wrapper(tensor)

            fns.insert(0, eager)
            labels.insert(0, (variant, 'torch-eager', 'fp32', False))
        for (name, backend, precision, binding), times in zip(labels, _interleaved(fns, args.runs, args.warmup),
                                                              strict=True):
            rows.append(_row(name, size, backend, precision, binding, args.threads, times))
        for t in timed:
            t.engine.close()
    env = _environment(args.threads)
    print(_table(rows, env))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({'environment': env, 'rows': [asdict(r) for r in rows],
                                         'ratios': _ratios(rows)}, indent=2))
        print(f'\nwrote {args.json}')
    return 0


def _model(args: argparse.Namespace, variant: str) -> tuple[object, object]:
    import torch

    from rtformer_ros.classes import get_classes
    from rtformer_ros.model import build_rtformer, load_checkpoint

    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        return ckpt.model, ckpt.classes
    torch.manual_seed(0)
    return build_rtformer(f'{variant}_camvid').eval(), get_classes('camvid')


def _exports(args: argparse.Namespace, variant: str, size: tuple[int, int], workdir: Path) -> dict[str, Path]:
    """precision -> exported (and quantized) file of ``variant`` at ``size``, made once per workdir."""
    from rtformer_ros.export import export_model

    paths = {}
    for precision in ['fp32', 'fp16'] if args.fp16 else ['fp32']:
        path = workdir / f'{variant}_{size[0]}x{size[1]}_{precision}.onnx'
        if not path.exists():
            model, classes = _model(args, variant)
            export_model(model, classes, path, size, fp16=precision == 'fp16')
        paths[precision] = path
    if args.int8:
        path = workdir / f'{variant}_{size[0]}x{size[1]}_int8.onnx'
        if not path.exists():
            from rtformer_ros.quantize import quantize_model

            quantize_model(paths['fp32'], path, _random_frames(workdir / 'calib'), frames=4, progress=False)
        paths['int8'] = path
    return paths


def _random_frames(folder: Path) -> Path:
    """A few random frames to calibrate on: INT8 speed does not depend on the ranges."""
    import cv2

    if not folder.exists():
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(4):
            cv2.imwrite(str(folder / f'{i}.png'), rng.integers(0, 256, (256, 320, 3), dtype=np.uint8))
    return folder


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
