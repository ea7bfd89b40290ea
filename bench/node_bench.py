"""rtformer_node benchmark: ROS overhead over the raw engine, overload behaviour, and a memory soak.

    python bench/node_bench.py --model models/rtformer_slim_camvid_360x480.onnx --json out/node_bench.json

Runs the node as its own process (``python -m rtformer_ros.ros.node``, default best-effort input) and a
``StampedClient`` (the probe) in this process; no ROS tooling needed. Three parts:

- overhead: frames sent one at a time (no queueing); end-to-end latency = publish in the probe -> labels
  received in the probe, against ``SegmentationEngine.infer`` on the same frame in this process. The node's
  /diagnostics split its share (wait, decode, infer, encode, publish); the rest is DDS transport plus
  (de)serialisation in both processes.
- overload: frames published at 2x the rate the node sustains, for ``--overload-seconds``: latency must stay
  bounded (latest-frame policy, no backlog), RSS flat, stale drops counted in /diagnostics.
- soak: ``--soak-frames`` small frames through the tiny model (the engine is not what is soaked), RSS growth.

Prints Markdown tables and writes everything as JSON. Timings are not asserted anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rtformer_ros.engine import SegmentationEngine
from rtformer_ros.image.codec import decode_image, image_message
from rtformer_ros.models import GPU_MODEL, model_dirs
from rtformer_ros.ros.client import (
    ClientError,
    Inbox,
    NodeProcess,
    StampedClient,
    diagnostic_values,
    large_frames,
    status_name,
)
from rtformer_ros.util import hw_arg, stamp_ns

REPO = Path(__file__).resolve().parents[1]
STATUS = status_name('/rtformer_node')  # the node's DiagnosticStatus for its one camera


def _tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / 'test'))
    from tiny_model import make_tiny_model  # the tests' 64x80 contract graph (needs onnx)

    return make_tiny_model(folder / 'tiny_camvid_64x80.onnx', size=(64, 80), confidence=True)


def _frame(size: tuple[int, int]) -> np.ndarray:
    """A smooth synthetic street-ish frame (gradients, not noise: JPEG/PNG and models behave as on camera)."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([128 + 100 * np.sin(x / 37), 128 + 100 * np.cos(y / 23), 255 * (y / height)], axis=2)
    return rgb.clip(0, 255).astype(np.uint8)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float('nan')


def _rss_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def _diagnostics(client: StampedClient, inbox: Inbox[DiagnosticArray], timeout: float = 10.0) -> dict[str, str]:
    """Node status from a /diagnostics message published after this call."""
    after = client.node.get_clock().now().nanoseconds
    msg = inbox.wait_for(lambda m: stamp_ns(m.header.stamp) > after and diagnostic_values(m, STATUS) is not None,
                         timeout)
    return diagnostic_values(msg, STATUS)


def _start(client: StampedClient, model: Path) -> tuple[NodeProcess, object]:
    node = NodeProcess(params={'model': model})
    # A camera driver's profile (best effort, depth 5), as the figures in docs/benchmarks.md were measured with
    publisher = client.publisher(Image, 'image', qos_profile_sensor_data)
    try:
        client.wait_for_subscribers(publisher, timeout=60)
    except ClientError:
        print(node.output, file=sys.stderr)
        node.stop()
        raise
    return node, publisher


def _stop(client: StampedClient, node: NodeProcess, publisher: object) -> None:
    client.node.destroy_publisher(publisher)
    node.stop()


def _served_ms(client: StampedClient, labels: Inbox[Image], stamp: int) -> float:
    """Publish of frame ``stamp`` -> its labels received, in ms (taken out of ``labels``)."""
    received, _ = labels.take([stamp])[stamp]
    return (received - client.sent[stamp]) / 1e6


def _engine_ms(model: Path, image: np.ndarray, runs: int) -> list[float]:
    with SegmentationEngine(model) as engine:
        return [engine.infer(image, confidence=False).latency_ms for _ in range(runs)]


def measure_overhead(client: StampedClient, labels: Inbox[Image], diag: Inbox[DiagnosticArray], model: Path,
                     size: tuple[int, int], frames: int) -> dict[str, object]:
    """End-to-end latency of lock-step frames vs the raw engine, and the node's own breakdown.

    Frames are sent and awaited without ``StampedClient.lockstep``'s resend: a resent frame would queue behind
    the one being served and add an inference to the next frame's latency; a lost one is counted instead.

    The engine is timed in this process before the node starts and again after it stopped, never while it
    runs: ONNX Runtime's worker threads spin after each run, so two sessions side by side on a small machine
    slow each other down. Bracketing the node run also shows drift in the machine's load.
    """
    image = _frame(size)
    before = _engine_ms(model, image, frames // 2 + 3)[3:]
    node, publisher = _start(client, model)
    try:
        e2e_ms, publish_ms, lost = [], [], 0
        for index in range(frames + 3):  # the first 3 warm up the path (allocations, DDS buffers)
            stamp = client.next_stamp()
            key = stamp_ns(stamp)
            client.send(publisher, key, image_message(Header(stamp=stamp, frame_id='bench'), image, 'rgb8'))
            published = time.monotonic_ns()
            if not client.wait([key], [labels], timeout=30):
                lost += 1
            elif index >= 3:
                e2e_ms.append(_served_ms(client, labels, key))
                publish_ms.append((published - client.sent[key]) / 1e6)
        status = _diagnostics(client, diag)
    finally:
        _stop(client, node, publisher)
    after = _engine_ms(model, image, frames // 2 + 3)[3:]
    node_ms = {key: float(status[f'{key}_ms_p50']) for key in ('wait', 'decode', 'infer', 'encode', 'publish')}
    node_ms['latency'] = float(status['latency_ms_p50'])
    e2e = statistics.median(e2e_ms)
    engine = statistics.median(before + after)
    return {
        'size': f'{size[0]}x{size[1]}', 'frames': len(e2e_ms), 'lost': lost,
        'engine_ms_p50': engine, 'engine_ms_p50_before': statistics.median(before),
        'engine_ms_p50_after': statistics.median(after),
        'e2e_ms_p50': e2e, 'e2e_ms_p95': _pct(e2e_ms, 95), 'ratio': e2e / engine,
        'node_ms_p50': node_ms, 'probe_publish_ms_p50': statistics.median(publish_ms),
        'transport_ms': e2e - node_ms['latency'],
        'cycle_ms': node_ms['latency'] - node_ms['wait'] + float(status['extras_ms_p50']),
    }


def measure_encode(size: tuple[int, int], runs: int = 20) -> dict[str, object]:
    """Message building: array.array('B').frombytes (what the node does) vs assigning numpy to msg.data."""
    labels = np.zeros(size, np.uint8)
    color = np.zeros((*size, 3), np.uint8)
    confidence = np.zeros(size, np.float32)
    header = Header()
    out: dict[str, object] = {'size': f'{size[0]}x{size[1]}'}
    for name, pixels, encoding in (('labels', labels, 'mono8'), ('color', color, 'rgb8'),
                                   ('confidence', confidence, '32FC1')):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            image_message(header, pixels, encoding)
            times.append((time.perf_counter() - start) * 1e3)
        out[f'{name}_ms'] = statistics.median(times)
    msg = Image()
    start = time.perf_counter()
    msg.data = labels.reshape(-1)  # the trap: rclpy walks the array element by element
    out['labels_numpy_assign_ms'] = (time.perf_counter() - start) * 1e3
    raw = image_message(header, color, 'rgb8')
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        decode_image(raw, 1 << 28)
        times.append((time.perf_counter() - start) * 1e3)
    out['decode_rgb8_ms'] = statistics.median(times)
    return out


def measure_overload(client: StampedClient, labels: Inbox[Image], diag: Inbox[DiagnosticArray], model: Path,
                     size: tuple[int, int], rate_hz: float, seconds: float) -> dict[str, object]:
    """Publish at ``rate_hz`` for ``seconds``; latency per served frame over time, RSS, drop counters."""
    image = _frame(size)
    data = image_message(Header(), image, 'rgb8')
    node, publisher = _start(client, model)
    pid = node.process.pid
    rss: list[tuple[float, float]] = []

    def frames() -> Iterator[tuple[float, int, Image]]:
        for count in itertools.count():
            if count / rate_hz >= seconds:
                return
            stamp = client.next_stamp()
            data.header = Header(stamp=stamp, frame_id='bench')
            yield count / rate_hz, stamp_ns(stamp), data

    try:
        before = _diagnostics(client, diag)
        start = time.monotonic()
        next_rss = start
        sent: list[int] = []
        for stamp, _ in client.timed(publisher, frames()):
            sent.append(stamp)
            if (now := time.monotonic()) >= next_rss:
                rss.append((now - start, _rss_mb(pid)))
                next_rss += 1.0
        elapsed = time.monotonic() - start
        time.sleep(2.0)  # let the last frame out
        rss.append((time.monotonic() - start, _rss_mb(pid)))
        after = _diagnostics(client, diag)
    finally:
        _stop(client, node, publisher)
    answers, t0 = labels.take(sent), client.sent[sent[0]]
    served = sorted(((client.sent[stamp] - t0) / 1e9, (answers[stamp][0] - client.sent[stamp]) / 1e6)
                    for stamp in sent if stamp in answers)
    count = len(sent)
    window = min(10.0, seconds / 3)
    first = [lat for t, lat in served if t < window]
    last = [lat for t, lat in served if t >= elapsed - window]
    counters = {key: int(after[key]) - int(before[key])
                for key in ('received', 'served', 'dropped_stale', 'dropped_malformed')}
    warm_rss = next((mb for t, mb in rss if t >= min(5.0, seconds / 4)), rss[0][1])
    return {
        'size': f'{size[0]}x{size[1]}', 'rate_hz': rate_hz, 'seconds': elapsed, 'published': count,
        'achieved_hz': count / elapsed, 'labels_received': len(served), **counters,
        'lost_in_dds': count - counters['received'],
        'latency_ms_first': {'p50': _pct(first, 50), 'p95': _pct(first, 95), 'max': max(first, default=float('nan'))},
        'latency_ms_last': {'p50': _pct(last, 50), 'p95': _pct(last, 95), 'max': max(last, default=float('nan'))},
        'rss_mb_start': warm_rss, 'rss_mb_end': rss[-1][1], 'rss_mb_growth': rss[-1][1] - warm_rss,
        'rss_mb_samples': rss,
    }


def measure_soak(client: StampedClient, labels: Inbox[Image], model: Path, size: tuple[int, int],
                 frames: int) -> dict[str, object]:
    """Lock-step ``frames`` through the node (no resend, as in ``measure_overhead``); RSS after the first 10 % and
    at the end."""
    image = _frame(size)
    node, publisher = _start(client, model)
    pid = node.process.pid
    served, rss_warm = 0, float('nan')
    start = time.perf_counter()
    try:
        for index in range(frames):
            stamp = client.next_stamp()
            key = stamp_ns(stamp)
            client.send(publisher, key, image_message(Header(stamp=stamp, frame_id='soak'), image, 'rgb8'))
            served += client.wait([key], [labels], timeout=5)
            labels.take([key])
            if index == frames // 10:
                rss_warm = _rss_mb(pid)
        rss_end = _rss_mb(pid)
    finally:
        _stop(client, node, publisher)
    return {'size': f'{size[0]}x{size[1]}', 'frames': frames, 'served': served,
            'seconds': time.perf_counter() - start, 'rss_mb_after_10pct': rss_warm, 'rss_mb_end': rss_end,
            'rss_mb_growth': rss_end - rss_warm}


def _hardware() -> dict[str, object]:
    cpu = next((line.split(':', 1)[1].strip() for line in Path('/proc/cpuinfo').read_text().splitlines()
                if line.startswith('model name')), platform.processor())
    return {'cpu': cpu, 'cores': os.cpu_count(), 'python': platform.python_version(),
            'onnxruntime': onnxruntime.__version__, 'rmw': os.environ.get('RMW_IMPLEMENTATION', 'default'),
            'fastdds_transports': os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT')}


def _report(results: dict[str, object]) -> str:
    lines = [f"Hardware: {results['hardware']}", f"Model: {results['model']}", '',
             '| frame | engine p50 ms (before / after) | end-to-end p50 ms | p95 ms | ratio | '
             'node: wait / decode / infer / encode / publish ms | transport ms (probe publish call) |',
             '|---|---|---|---|---|---|---|']
    for row in results['overhead']:
        n = row['node_ms_p50']
        lines.append(f"| {row['size']} | {row['engine_ms_p50']:.1f} ({row['engine_ms_p50_before']:.1f} / "
                     f"{row['engine_ms_p50_after']:.1f}) | {row['e2e_ms_p50']:.1f} | "
                     f"{row['e2e_ms_p95']:.1f} | {row['ratio']:.3f} | {n['wait']:.2f} / {n['decode']:.2f} / "
                     f"{n['infer']:.1f} / {n['encode']:.2f} / {n['publish']:.2f} | {row['transport_ms']:.1f} "
                     f"({row['probe_publish_ms_p50']:.1f}) |")
    lines += ['', '| frame | labels ms | color ms | confidence ms | labels via numpy assign ms | decode rgb8 ms |',
              '|---|---|---|---|---|---|']
    for row in results['encode']:
        lines.append(f"| {row['size']} | {row['labels_ms']:.2f} | {row['color_ms']:.2f} | "
                     f"{row['confidence_ms']:.2f} | {row['labels_numpy_assign_ms']:.0f} | "
                     f"{row['decode_rgb8_ms']:.2f} |")
    if results.get('overload'):
        o = results['overload']
        lines += ['', f"Overload: {o['size']} at {o['achieved_hz']:.1f} Hz (2x sustained) for {o['seconds']:.0f} s "
                  f"({results['overload_model']})", '',
                  '| published | received | served | dropped stale | lost in DDS | latency p50/p95/max first 10 s ms '
                  '| last 10 s ms | RSS start -> end MB |', '|---|---|---|---|---|---|---|---|',
                  f"| {o['published']} | {o['received']} | {o['served']} | {o['dropped_stale']} | {o['lost_in_dds']} | "
                  f"{o['latency_ms_first']['p50']:.0f} / {o['latency_ms_first']['p95']:.0f} / "
                  f"{o['latency_ms_first']['max']:.0f} | {o['latency_ms_last']['p50']:.0f} / "
                  f"{o['latency_ms_last']['p95']:.0f} / {o['latency_ms_last']['max']:.0f} | "
                  f"{o['rss_mb_start']:.0f} -> {o['rss_mb_end']:.0f} ({o['rss_mb_growth']:+.1f}) |"]
    if results.get('soak'):
        s = results['soak']
        lines += ['', f"Soak: {s['served']}/{s['frames']} frames of {s['size']} in {s['seconds']:.0f} s, RSS "
                  f"{s['rss_mb_after_10pct']:.0f} -> {s['rss_mb_end']:.0f} MB ({s['rss_mb_growth']:+.1f} MB)"]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts; print Markdown, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', type=Path, default=None,
                        help=f'exported model (default {GPU_MODEL} if installed, else the tiny test graph)')
    parser.add_argument('--sizes', nargs='+', type=hw_arg(), default=[(360, 480), (1024, 2048)])
    parser.add_argument('--frames', type=int, default=30, help='lock-step frames per size')
    parser.add_argument('--overload-seconds', type=float, default=60.0, help='0 skips the overload run')
    parser.add_argument('--overload-size', type=hw_arg(), default=(360, 480))
    parser.add_argument('--soak-frames', type=int, default=10_000, help='0 skips the soak')
    parser.add_argument('--soak-size', type=hw_arg(), default=(120, 160))
    parser.add_argument('--json', type=Path, default=REPO / 'out' / 'node_bench.json')
    args = parser.parse_args(argv)
    # A 1024x2048 rgb8 frame needs Fast DDS's large-data transports; the node inherits them.
    with large_frames(), tempfile.TemporaryDirectory(prefix='node_bench_') as scratch:
        tiny = _tiny_model(Path(scratch))
        model = args.model or next((d / GPU_MODEL for d in model_dirs() if (d / GPU_MODEL).is_file()), tiny)
        results: dict[str, object] = {'hardware': _hardware(), 'model': str(model), 'argv': sys.argv[1:]}
        with StampedClient('node_bench') as client:
            labels = client.subscribe(Image, 'segmentation/labels', history=False)
            diag = client.subscribe(DiagnosticArray, '/diagnostics')
            results['overhead'] = [measure_overhead(client, labels, diag, model, size, args.frames)
                                   for size in args.sizes]
            results['encode'] = [measure_encode(size) for size in args.sizes]
            if args.overload_seconds > 0:
                overhead = next((row for row in results['overhead'] if row['size'] ==
                                 f'{args.overload_size[0]}x{args.overload_size[1]}'), results['overhead'][0])
                rate = 2 * 1000.0 / overhead['cycle_ms']
                results['overload_model'] = str(model)
                results['overload'] = measure_overload(client, labels, diag, model, args.overload_size, rate,
                                                       args.overload_seconds)
            if args.soak_frames > 0:
                results['soak_model'] = str(tiny)
                results['soak'] = measure_soak(client, labels, tiny, args.soak_size, args.soak_frames)
    print(_report(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
