"""``rtformer eval --bags`` (workers, shards) and ``rtformer eval-merge`` on real bags.

The merged report of shards must equal one run over the same bags, and both must equal the sum of one
``eval --bag`` run per bag: confusion matrices and frame counts exactly; latencies are measurements, so only
their number and their concatenation in listing order are compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import rtformer, rtformer_error

from rtformer_ros.bags.fleet import find_bags, parse_shard, shard_indices
from rtformer_ros.bags.writer import BagWriter, image_message

IMAGE, LABELS, PRED = '/camera/image_raw', '/camera/labels', '/camera/segmentation/labels'
TIMINGS = ('latency_ms', 'throughput_fps', 'wall_fps')  # measured, so they differ between two runs


def write_bag(path: Path, seed: int, frames: int, storage: str = 'sqlite3', extra_label: bool = False,
              topics: tuple[str, ...] = (IMAGE, LABELS), max_id: int = 10) -> None:
    """Random colour frames (the tiny model tells red/green/blue/dark apart) and random labels, some ignored."""
    rng = np.random.default_rng(seed)
    with BagWriter(path, storage) as bag:
        for topic in topics:
            bag.add_topic(topic, 'sensor_msgs/msg/Image')
        for i in range(frames):
            stamp = 1_700_000_000 * 10**9 + i * 10**8
            bgr = (rng.integers(0, 4, (12, 16, 3)) * 85).astype(np.uint8)
            labels = rng.integers(0, max_id + 1, (12, 16)).astype(np.uint8)
            labels[rng.random((12, 16)) < 0.1] = 255
            if IMAGE in topics:
                bag.write(IMAGE, stamp, image_message(stamp, 'cam', bgr, 'bgr8'))
            bag.write(LABELS, stamp, image_message(stamp, 'cam', labels, 'mono8'))
            if PRED in topics:
                pred = np.minimum(labels, max_id).astype(np.uint8)
                pred[rng.random((12, 16)) < 0.3] = 0
                bag.write(PRED, stamp, image_message(stamp, 'cam', pred, 'mono8'))
        if extra_label:  # a label without an image: unpaired
            stamp = 1_800_000_000 * 10**9
            bag.write(LABELS, stamp, image_message(stamp, 'cam', labels, 'mono8'))


@pytest.fixture(scope='module')
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('fleet')
    write_bag(root / 'robot_a' / 'run1', 1, 3)
    write_bag(root / 'robot_a' / 'run2', 2, 2, 'mcap', extra_label=True)
    write_bag(root / 'robot_b' / 'run3', 3, 4)
    write_bag(root / 'robot_b' / 'run4', 4, 1, 'mcap')
    write_bag(root / 'robot_b' / 'labels_only', 5, 2, topics=(LABELS,))  # no image topic: not scorable
    return root


def report(out: Path) -> dict:
    return json.loads((out / 'report.json').read_text())


def untimed(rep: dict) -> dict:
    return {key: value for key, value in rep.items() if key not in TIMINGS}


def test_two_shards_merge_to_one_run_and_to_the_sum_of_single_bag_runs(
        fleet: Path, tiny_model: Path, tmp_path: Path) -> None:
    args = ('--image-topic', IMAGE, '--label-topic', LABELS, '--model', str(tiny_model), '--providers', 'cpu',
            '--samples', '3')
    result = rtformer('eval', '--bags', fleet, '--workers', '2', '--out', tmp_path / 'one', *args)
    assert result.rc == 0 and 'labels_only: no topic /camera/image_raw' in result.err
    for index in (0, 1):
        assert rtformer('eval', '--bags', fleet, '--shard', f'{index}/2', '--out', tmp_path / 'parts',
                        *args).rc == 0
    assert rtformer('eval-merge', tmp_path / 'parts', '--out', tmp_path / 'merged').rc == 0
    one, merged = report(tmp_path / 'one'), report(tmp_path / 'merged')
    assert untimed(merged) == untimed(one)

    # The same bags one by one through the single-bag path: the fleet report is their exact sum.
    good = [row['path'] for row in one['bags'] if row['error'] is None]
    assert [Path(p).name for p in good] == ['run1', 'run2', 'run3', 'run4']
    singles = []
    for i, path in enumerate(good):
        assert rtformer('eval', '--bag', path, '--out', str(tmp_path / f's{i}'), *args).rc == 0
        singles.append(report(tmp_path / f's{i}'))
    assert one['confusion'] == np.sum([s['confusion'] for s in singles], axis=0).tolist()
    for key in ('frames', 'paired', 'unpaired', 'skipped', 'pixels'):
        assert one[key] == sum(s[key] for s in singles), key
    assert (one['frames'], one['unpaired'], one['bags_failed']) == (10, 1, 1)
    assert [row['frames'] for row in one['bags'] if row['error'] is None] == [s['frames'] for s in singles]
    assert [row['miou'] for row in one['bags'] if row['error'] is None] == [s['miou'] for s in singles]
    # Confidence statistics (the node's out-of-domain band comes from them): every frame of every bag counts.
    assert one['confidence'] is not None and one['confidence']['frames'] == one['frames']
    mean = sum(s['confidence']['mean'] * s['confidence']['frames'] for s in singles) / one['frames']
    assert one['confidence']['mean'] == pytest.approx(mean, rel=1e-9)

    # Latency samples: one per frame, the shards' concatenated in listing order give the merged percentiles.
    parts = [json.loads(p.read_text()) for p in sorted((tmp_path / 'parts').glob('part-*.json'))]
    assert sorted(len(p['parts']) for p in parts) == [2, 3]
    bags = sorted((bag for p in parts for bag in p['parts']), key=lambda bag: bag['index'])
    latencies = [ms for bag in bags for ms in bag['latencies_ms']]
    assert len(latencies) == merged['frames']
    assert merged['latency_ms']['p95'] == pytest.approx(float(np.percentile(latencies, 95)), rel=1e-12)
    assert '## Per bag (5)' in (tmp_path / 'merged' / 'report.md').read_text()
    assert (tmp_path / 'merged' / 'samples.png').stat().st_size > 0


def test_generic_classes_pad_to_the_most_ids_seen_in_any_bag(tmp_path: Path) -> None:
    write_bag(tmp_path / 'bags' / 'few', 6, 2, topics=(LABELS, PRED), max_id=3)
    write_bag(tmp_path / 'bags' / 'many', 7, 2, topics=(LABELS, PRED), max_id=6)
    args = ('--bags', str(tmp_path / 'bags' / '*'), '--label-topic', LABELS, '--pred-topic', PRED)
    assert rtformer('eval', *args, '--out', tmp_path / 'one').rc == 0
    for index in range(3):  # more shards than bags: one shard scores nothing, and says so in its part
        out = tmp_path / 'parts' / ('last.json' if index == 2 else '')  # a folder, or the part file itself
        assert rtformer('eval', *args, '--shard', f'{index}/3', '--out', out).rc == 0
    assert json.loads((tmp_path / 'parts' / 'last.json').read_text())['shard'] == [2, 3]
    assert rtformer('eval-merge', *(tmp_path / 'parts').glob('*.json'), '--out', tmp_path / 'm').rc == 0
    one = report(tmp_path / 'one')
    assert len(one['class_names']) == 7 and np.asarray(one['confusion']).shape == (7, 7)
    assert untimed(report(tmp_path / 'm')) == untimed(one)


def test_merge_refuses_missing_duplicate_and_foreign_shards(fleet: Path, tmp_path: Path) -> None:
    def shard(index: int, count: int, out: str, bags: Path = fleet / 'robot_a') -> Path:
        assert rtformer('eval', '--bags', bags, '--label-topic', LABELS, '--pred-topic', LABELS + '_pred_none',
                        '--shard', f'{index}/{count}', '--out', tmp_path / out).rc == 0
        return next((tmp_path / out).glob(f'part-{index}-of-{count}.json'))

    # No bag has the prediction topic: every bag fails, but the parts are written and name the reason.
    first, second = shard(0, 2, 'a'), shard(1, 2, 'b')
    cases = {
        (first,): 'missing shards 1 of 2 (got 0)',
        (first, first): f'shard 0/2 given twice ({first}, {first})',
        (first, shard(1, 2, 'c', fleet / 'robot_b')): 'bag listing differs',
        (first, shard(1, 3, 'd')): 'shard 1/3, but',
        (first, second): 'no frame of 2 bags could be scored',
    }
    (tmp_path / 'junk.json').write_text('{"a": 1}')
    cases[(tmp_path / 'junk.json',)] = 'not an rtformer eval part'
    for parts, expected in cases.items():
        assert expected in rtformer_error('eval-merge', *parts, '--out', tmp_path / 'm'), parts
    topics = ('--label-topic', LABELS, '--pred-topic', PRED)
    assert 'nothing*: no bags there' in rtformer_error('eval', '--bags', tmp_path / 'nothing*', *topics)
    assert '--workers and --shard go with --bags' in rtformer_error('eval', '--bag', fleet, *topics, '--workers', '2')


def test_listing_and_shares(fleet: Path, tmp_path: Path) -> None:
    listing = find_bags([str(fleet)])
    assert [Path(p).relative_to(fleet).as_posix() for p, _ in listing] == [
        'robot_a/run1', 'robot_a/run2', 'robot_b/labels_only', 'robot_b/run3', 'robot_b/run4']
    mcap = next((fleet / 'robot_a' / 'run2').glob('*.mcap'))
    assert find_bags([str(fleet / 'robot_a' / '*'), str(mcap)]) == listing[:2]  # no bag twice
    loose = tmp_path / 'loose.mcap'
    loose.write_bytes(mcap.read_bytes())
    assert find_bags([str(tmp_path)]) == [(str(loose), mcap.stat().st_size)]
    sizes = [50, 10, 40, 30, 20, 5]
    shares = [shard_indices(sizes, i, 3) for i in range(3)]
    assert sorted(i for share in shares for i in share) == list(range(6))
    assert [sum(sizes[i] for i in share) for share in shares] == [55, 50, 50]
    assert parse_shard('3/4') == (3, 4) and parse_shard('4/4') == (0, 4)  # 1-based array indices work too
    for bad in ('5/4', '0/0', '1', '-1/2', 'a/b'):
        with pytest.raises(ValueError, match='expected I/N'):
            parse_shard(bad)
