"""`rtformer bench --models`: the rows it writes for fp32 and INT8 files on every CPU backend (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
from helpers import rtformer

from rtformer_ros.quantize import quantize_model

HAS_OPENVINO = importlib.util.find_spec('openvino') is not None


def ov_precisions() -> tuple[str, ...]:
    import openvino as ov

    return ('fp32', 'bf16') if 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES') else ('fp32',)


def test_bench_times_given_files_side_by_side_and_names_each_row(tiny_model: Path, tmp_path: Path) -> None:
    calib = tmp_path / 'calib'
    calib.mkdir()
    for i in range(2):
        cv2.imwrite(str(calib / f'{i}.png'), np.random.default_rng(i).integers(0, 256, (64, 80, 3), np.uint8))
    int8 = quantize_model(tiny_model, tmp_path / 'tiny_int8.onnx', calib, frames=2, progress=False)
    out = tmp_path / 'bench.json'
    backends = ['cpu', *(['openvino', 'openvino-fp32'] if HAS_OPENVINO else [])]
    assert rtformer('bench', '--models', tiny_model, int8, '--backends', *backends, '--runs', '2',
                    '--warmup', '0', '--json', out).rc == 0
    rows = json.loads(out.read_text())['rows']
    got = {(r['variant'], r['backend'], r['precision'], r['io_binding']) for r in rows}
    expected = set()
    for name, precision in ((tiny_model.name, 'fp32'), (int8.name, 'int8')):
        expected |= {(f'tiny ({name})', 'ort-cpu', precision, binding) for binding in (False, True)}
        if HAS_OPENVINO:  # 'openvino' and 'openvino-fp32' collapse into one row where the CPU has no bf16
            expected |= {(f'tiny ({name})', f'openvino-{p}', precision, False) for p in ov_precisions()}
    assert got == expected
    assert all(r['runs'] == 2 and r['median_ms'] > 0 and r['size'] == '64x80' for r in rows)
