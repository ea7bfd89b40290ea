"""``rtformer replay`` through a real ``rtformer_node`` process, then ``eval --pred-topic`` on what it recorded.

Lockstep replay must score exactly like ``eval --model`` on the input bag: same frames, same engine, same labels.
The node runs as ``ros2 run`` would start it, in its own process, on the session's random ROS_DOMAIN_ID.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rtformer_ros.bags import add_eval_arguments, add_replay_arguments, run_eval, run_replay
from rtformer_ros.bags.dataset import find_samples, write_dataset_bag
from rtformer_ros.bags.reader import BagReader, header_stamp_ns
from rtformer_ros.ros.client import NodeProcess

pytestmark = pytest.mark.ros

IMAGE, LABELS, PRED = '/camera/image_raw', '/camera/labels', '/camera/segmentation/labels'


def cli(add: Callable[[argparse.ArgumentParser], None], handler: Callable[[argparse.Namespace], int],
        *argv: str) -> int:
    parser = argparse.ArgumentParser()
    add(parser)
    return handler(parser.parse_args([*argv, '--no-progress']))


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


def camvid_bag(camvid_dir: Path, path: Path, frames: int) -> Path:
    samples, void = find_samples(camvid_dir, 'val')
    write_dataset_bag(samples[:frames], path, void=void, image_topic=IMAGE, label_topic=LABELS, progress=False)
    return path


def scores(tmp_path: Path, name: str, *argv: str) -> dict:
    out = tmp_path / name
    assert cli(add_eval_arguments, run_eval, '--label-topic', LABELS, '--out', str(out), *argv) == 0
    return json.loads((out / 'report.json').read_text())


def replay_and_compare(bag: Path, model: Path, tmp_path: Path, frames: int, storage: str,
                       namespace: str = '/camera') -> None:
    recorded = tmp_path / 'recorded'
    pred = f'{namespace}/segmentation/labels'
    assert cli(add_replay_arguments, run_replay, '--bag', str(bag), '--image-topic', IMAGE, '--label-topic', LABELS,
               '--publish-topic', f'{namespace}/image_raw', '-o', str(recorded), '--lockstep', '--timeout', '30',
               '--wait', '60', '--storage', storage) == 0
    with BagReader(recorded) as out:
        assert {topic: out.message_count(topic) for topic in out.topics} == {IMAGE: frames, LABELS: frames,
                                                                             pred: frames}
    direct = scores(tmp_path, 'direct', '--bag', str(bag), '--image-topic', IMAGE, '--model', str(model),
                    '--providers', 'cpu')
    replayed = scores(tmp_path, 'replayed', '--bag', str(recorded), '--image-topic', IMAGE, '--pred-topic', pred,
                      '--model', str(model))
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
    assert cli(add_replay_arguments, run_replay, '--bag', str(bag), '--image-topic', IMAGE, '--label-topic', LABELS,
               '-o', str(recorded), '--rate', '4', '--limit', '3', '--record', color, '--wait', '60') == 0
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


def test_replay_without_a_node_says_so_in_one_line(camvid_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bag = camvid_bag(camvid_dir, tmp_path / 'bag', 1)
    assert cli(add_replay_arguments, run_replay, '--bag', str(bag), '--image-topic', IMAGE, '-o',
               str(tmp_path / 'out'), '--publish-topic', '/nobody/listens', '--wait', '1') == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('rtformer replay: no node on /nobody/listens -> /nobody/segmentation/labels after 1 s')
    assert len(err.splitlines()) == 1
    assert not (tmp_path / 'out').exists()
