"""``rtformer replay`` through a real ``rtformer_node`` process, then ``eval --pred-topic`` on what it recorded.

Lockstep replay must score exactly like ``eval --model`` on the input bag: same frames, same engine, same labels.
The node runs as ``ros2 run`` would start it, in its own process, on the session's random ROS_DOMAIN_ID.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import IMAGE, LABELS, camvid_bag, rtformer, rtformer_error

from rtformer_ros.bags.reader import BagReader
from rtformer_ros.ros.client import NodeProcess
from rtformer_ros.util import header_stamp_ns

pytestmark = pytest.mark.ros

PRED = '/camera/segmentation/labels'


@contextmanager
def camera_node(model: Path, namespace: str = '/camera') -> Iterator[NodeProcess]:
    """``rtformer_node`` reading ``<namespace>/image_raw``, as ``ros2 run`` would start it; its log is printed after
    (shown when a test fails)."""
    node = NodeProcess(params={'model': model, 'providers': 'cpu'},
                       ros_args=['-r', f'__ns:={namespace}', '-r', 'image:=image_raw'])
    try:
        with node:
            yield node
    finally:
        print(node.output)


@pytest.fixture(scope='module')
def tiny_node(tiny_model: Path) -> Iterator[NodeProcess]:
    with camera_node(tiny_model) as node:
        yield node


def scores(tmp_path: Path, name: str, *argv: object) -> dict:
    out = tmp_path / name
    assert rtformer('eval', '--label-topic', LABELS, '--out', out, '--no-progress', *argv).rc == 0
    return json.loads((out / 'report.json').read_text())


def replay_and_compare(bag: Path, model: Path, tmp_path: Path, frames: int, storage: str,
                       namespace: str = '/camera') -> None:
    recorded = tmp_path / 'recorded'
    pred = f'{namespace}/segmentation/labels'
    assert rtformer('replay', '--bag', bag, '--image-topic', IMAGE, '--label-topic', LABELS, '--publish-topic',
                    f'{namespace}/image_raw', '-o', recorded, '--lockstep', '--timeout', '30', '--wait', '60',
                    '--storage', storage, '--no-progress').rc == 0
    with BagReader(recorded) as out:
        assert {topic: out.message_count(topic) for topic in out.topics} == {IMAGE: frames, LABELS: frames,
                                                                             pred: frames}
    direct = scores(tmp_path, 'direct', '--bag', bag, '--image-topic', IMAGE, '--model', model, '--providers', 'cpu')
    replayed = scores(tmp_path, 'replayed', '--bag', recorded, '--image-topic', IMAGE, '--pred-topic', pred,
                      '--model', model)
    assert replayed['frames'] == direct['frames'] == frames
    assert replayed['unpaired'] == replayed['skipped'] == 0
    assert replayed['confusion'] == direct['confusion']
    assert replayed['miou'] == direct['miou']
    assert replayed['per_class_iou'] == direct['per_class_iou']


def test_lockstep_replay_through_the_node_scores_like_direct_eval(camvid_dir: Path, tiny_model: Path,
                                                                  tmp_path: Path, tiny_node: NodeProcess) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', 4)
    replay_and_compare(bag, tiny_model, tmp_path, 4, 'mcap')


def test_timed_replay_records_answers_and_extra_topics_of_the_frames_sent(camvid_dir: Path, tmp_path: Path,
                                                                          tiny_node: NodeProcess) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', 5)
    recorded = tmp_path / 'recorded'
    color = '/camera/segmentation/color'
    assert rtformer('replay', '--bag', bag, '--image-topic', IMAGE, '--label-topic', LABELS, '-o', recorded,
                    '--rate', '4', '--limit', '3', '--record', color, '--wait', '60', '--no-progress').rc == 0
    with BagReader(bag) as src:
        sent = [header_stamp_ns(raw) for _, _, raw in src.messages([IMAGE])][:3]
    with BagReader(recorded) as out:
        stamps = {topic: [header_stamp_ns(raw) for _, _, raw in out.messages([topic])] for topic in out.topics}
    assert stamps[IMAGE] == stamps[LABELS] == sent  # copied in order, only the frames sent
    # The node may drop frames in real time, and a best-effort sample can be lost on one topic and not the other,
    # but whatever arrived is a frame that was sent, recorded once per topic.
    for topic in (PRED, color):
        assert stamps[topic] and set(stamps[topic]) <= set(sent), topic
        assert len(set(stamps[topic])) == len(stamps[topic]), topic


@pytest.fixture(scope='module')
def slim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init RTFormer-Slim exported at CamVid's 360x480 (torch only here, in the test)."""
    pytest.importorskip('torch')
    import torch

    from rtformer_ros.classes import get_classes
    from rtformer_ros.export import export_model
    from rtformer_ros.model import build_rtformer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('slim') / 'slim_camvid_360x480.onnx'
    return export_model(build_rtformer('slim_camvid').eval(), get_classes('camvid'), path, (360, 480))


def test_lockstep_replay_of_exported_slim_scores_like_direct_eval(camvid_dir: Path, slim_model: Path,
                                                                  tmp_path: Path) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', 3)
    with camera_node(slim_model, '/slim'):  # its own topics: the tiny node may still run
        replay_and_compare(bag, slim_model, tmp_path, 3, 'sqlite3', '/slim')


def test_replay_without_a_node_says_so_in_one_line(camvid_dir: Path, tmp_path: Path) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', 1)
    err = rtformer_error('replay', '--bag', bag, '--image-topic', IMAGE, '-o', tmp_path / 'out', '--publish-topic',
                         '/nobody/listens', '--wait', '1', '--no-progress')
    assert err.startswith('rtformer replay: no node on /nobody/listens -> /nobody/segmentation/labels after 1 s')
    assert not (tmp_path / 'out').exists()
