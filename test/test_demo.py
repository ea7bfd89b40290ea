"""``rtformer demo``: a video through the real node process into video, GIF, contact sheet and summary; one-line
errors without a video or model; vtest.avi taken out of a Debian package and cached (no network: a package
built here and an ``apt-get`` stand-in that hands it over)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import rtformer_error
from PIL import Image

from rtformer_ros.classes import get_classes
from rtformer_ros.demo.command import DemoError
from rtformer_ros.demo.sources import VTEST_MEMBER, extract_from_deb, fetch_vtest

pytestmark = pytest.mark.ros

FRAMES, HEIGHT, WIDTH, FPS = 12, 160, 200, 10.0
# BGR stripes the tiny model labels as 0 (red), 1 (green), 2 (blue), 3 (dark): a quarter of the picture each.
STRIPES = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 0, 0))


def _write_video(path: Path, frames: int = FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_stripes(i))
    writer.release()
    return path


def _stripes(index: int) -> np.ndarray:
    """A BGR frame: the stripes, and a bar at the top that grows with ``index``."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    stripe = WIDTH // len(STRIPES)
    for k, color in enumerate(STRIPES):
        frame[:, k * stripe:(k + 1) * stripe] = color
    frame[:8, :index + 1] = 255
    return frame


def _write_bag(path: Path, frames: int = FRAMES) -> Path:
    """A rosbag2 with rgb8 frames on /camera/image_raw (and a label topic the demo must not pick)."""
    from rtformer_ros.bags.writer import BagWriter, image_message

    start_ns = 1_700_000_000_000_000_000
    with BagWriter(path) as bag:
        bag.add_topic('/camera/image_raw', 'sensor_msgs/msg/Image')
        bag.add_topic('/camera/labels', 'sensor_msgs/msg/Image')
        for i in range(frames):
            stamp = start_ns + round(i * 1e9 / FPS)
            rgb = np.ascontiguousarray(_stripes(i)[:, :, ::-1])
            bag.write('/camera/image_raw', stamp, image_message(stamp, 'camera', rgb, 'rgb8'))
            bag.write('/camera/labels', stamp, image_message(stamp, 'camera', rgb[:, :, 0], 'mono8'))
    return path


def _run_demo(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    return subprocess.run([sys.executable, '-m', 'rtformer_ros.demo', '--no-progress', *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(('source', 'mode'), [('video', 'lockstep'), ('video', 'realtime'), ('bag', 'lockstep')])
def test_demo_runs_frames_through_node_and_writes_valid_outputs(source: str, mode: str, tmp_path: Path,
                                                                tiny_model: Path) -> None:
    if source == 'video':
        given = ['--video', str(_write_video(tmp_path / 'street.avi'))]
    else:  # rgb8 frames: the class shares below also prove the channel order survives
        given = ['--bag', str(_write_bag(tmp_path / 'street_bag'))]
    out = tmp_path / 'out'
    extra = ['--realtime'] if mode == 'realtime' else []
    result = _run_demo(*given, '--model', str(tiny_model), '--out', str(out), *extra, cache=tmp_path / 'cache')
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ('overlay.mp4', 'overlay.gif', 'contact_sheet.png', 'summary.json'):
        assert str(out / name) in result.stdout  # says where the files are

    summary = json.loads((out / 'summary.json').read_text())
    assert summary['mode'] == mode
    assert summary['frames_sent'] == FRAMES
    assert 1 <= summary['frames_received'] <= FRAMES
    assert summary['frames_missed'] == FRAMES - summary['frames_received']
    if mode == 'lockstep':
        assert summary['frames_received'] == FRAMES  # lockstep: every frame is served
    assert summary['video_frames_written'] >= summary['frames_received']
    assert summary['size'] == [WIDTH, HEIGHT] and summary['video_fps'] == pytest.approx(FPS)
    assert summary['provider'] == 'CPUExecutionProvider'
    assert (summary['variant'], summary['dataset']) == ('tiny', 'camvid')
    assert 0 < summary['latency_ms']['p50'] <= summary['latency_ms']['p95']
    assert summary['fps'] > 0
    node = summary['node']
    assert node['served'] >= summary['frames_received'] + 1  # the warm-up frame counts too
    assert node['engine_ms_p50'] is not None and node['exit_code'] == 0
    shares = summary['class_share']
    names = get_classes('camvid').names
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    for class_id in range(4):  # the stripes, less the changing bar at the top
        assert shares[names[class_id]] == pytest.approx(0.25, abs=0.04), shares

    capture = cv2.VideoCapture(str(out / 'overlay.mp4'))
    frames = []
    while (ok_frame := capture.read())[0]:
        frames.append(ok_frame[1])
    capture.release()
    assert len(frames) == summary['video_frames_written']
    assert frames[0].shape == (HEIGHT, WIDTH, 3)
    # The overlay is half input, half palette colour: check the middle of the red stripe (class 0).
    palette_bgr = np.asarray(get_classes('camvid').palette[0][::-1], np.float32)
    expected = 0.5 * np.asarray(STRIPES[0], np.float32) + 0.5 * palette_bgr
    assert np.abs(frames[0][HEIGHT // 2, WIDTH // 8].astype(np.float32) - expected).max() < 40

    sheet = cv2.imread(str(out / 'contact_sheet.png'))
    assert sheet is not None and sheet.shape[1] == 3 * 320
    rows = min(4, FRAMES) if mode == 'lockstep' else 1
    assert sheet.shape[0] > rows * 320 * HEIGHT // WIDTH

    with Image.open(out / 'overlay.gif') as gif:
        assert gif.n_frames >= 1 and gif.size == (320, 256)


def test_demo_without_the_video_is_one_line_error(tmp_path: Path, tiny_model: Path) -> None:
    err = rtformer_error('demo', '--video', tmp_path / 'missing.avi', '--model', tiny_model, '--out', tmp_path / 'out',
                         '--no-progress')
    assert err == f'rtformer demo: {tmp_path / "missing.avi"}: no such video file'


def test_demo_asks_for_the_topic_of_a_bag_with_several_cameras(tmp_path: Path, tiny_model: Path) -> None:
    from rtformer_ros.bags.writer import BagWriter, image_message

    with BagWriter(tmp_path / 'two') as bag:
        for topic in ('/front/image', '/rear/image'):
            bag.add_topic(topic, 'sensor_msgs/msg/Image')
            bag.write(topic, 1, image_message(1, 'camera', _stripes(0), 'bgr8'))
    err = rtformer_error('demo', '--bag', tmp_path / 'two', '--model', tiny_model, '--no-progress')
    assert err == (f'rtformer demo: {tmp_path / "two"}: pass --image-topic (camera topics found: /front/image, '
                   '/rear/image)')


def test_demo_without_the_model_is_one_line_error(tmp_path: Path) -> None:
    video = _write_video(tmp_path / 'v.avi', frames=2)
    for model in (str(tmp_path / 'missing.onnx'), 'no_such_model.onnx'):
        err = rtformer_error('demo', '--video', video, '--model', model, '--no-progress')
        assert 'no such file' in err and err.endswith('pass --model FILE.onnx'), err
    assert not (tmp_path / 'out').exists()


# ------------------------------------------------------------------------------------------------ vtest.avi

@pytest.fixture
def fake_deb(tmp_path: Path) -> tuple[Path, bytes]:
    """A real .deb holding a small avi at vtest.avi's path (dpkg-deb --build)."""
    if shutil.which('dpkg-deb') is None:
        pytest.skip('dpkg-deb not installed (Debian/Ubuntu tool)')
    root = tmp_path / 'pkg'
    (root / 'DEBIAN').mkdir(parents=True)
    (root / 'DEBIAN' / 'control').write_text('Package: opencv-doc\nVersion: 9.9-1\nArchitecture: all\n'
                                             'Maintainer: test <t@example.org>\nDescription: fake docs\n')
    member = root / VTEST_MEMBER.removeprefix('./')
    member.parent.mkdir(parents=True)
    _write_video(member, frames=3)
    (member.parent / 'other.avi').write_bytes(b'not this one')
    deb = tmp_path / 'opencv-doc_9.9-1_all.deb'
    subprocess.run(['dpkg-deb', '--root-owner-group', '--build', str(root), str(deb)], check=True,
                   capture_output=True)
    return deb, member.read_bytes()


def _fake_apt_get(bin_dir: Path, deb: Path | None) -> Path:
    """An ``apt-get`` that 'downloads' ``deb`` into the current folder (None: fails as without package lists)."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / 'apt-get'
    body = (f'[ "$1 $2" = "download opencv-doc" ] || exit 2\ncp "{deb}" .\n' if deb else
            'echo "E: Unable to locate package opencv-doc" >&2\nexit 100\n')
    script.write_text('#!/bin/sh\n' + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_extract_from_deb_copies_the_member(fake_deb: tuple[Path, bytes], tmp_path: Path) -> None:
    deb, content = fake_deb
    dest = extract_from_deb(deb, VTEST_MEMBER, tmp_path / 'cache' / 'vtest.avi')
    assert dest.read_bytes() == content
    assert cv2.VideoCapture(str(dest)).read()[0]
    with pytest.raises(DemoError, match=r'no file ./usr/share/doc/opencv-doc/missing.avi in it'):
        extract_from_deb(deb, './usr/share/doc/opencv-doc/missing.avi', tmp_path / 'missing.avi')
    assert not (tmp_path / 'missing.avi').exists() and not (tmp_path / 'missing.avi.part').exists()


def test_fetch_vtest_downloads_once_and_keeps_only_the_video(fake_deb: tuple[Path, bytes], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    deb, content = fake_deb
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    monkeypatch.setenv('PATH', f'{_fake_apt_get(tmp_path / "bin", deb)}{os.pathsep}{os.environ["PATH"]}')
    video = fetch_vtest()
    assert video == tmp_path / 'xdg' / 'rtformer_ros' / 'vtest.avi'
    assert video.read_bytes() == content
    assert [p.name for p in video.parent.iterdir()] == ['vtest.avi']  # no .deb, no download folder left
    _fake_apt_get(tmp_path / 'bin', None)  # a second run needs no download
    assert fetch_vtest() == video


def test_demo_without_a_default_video_says_what_to_pass(tmp_path: Path, tiny_model: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    monkeypatch.setenv('PATH', f'{_fake_apt_get(tmp_path / "bin", None)}{os.pathsep}{os.environ["PATH"]}')
    err = rtformer_error('demo', '--model', tiny_model, '--out', tmp_path / 'out', '--no-progress')
    assert err.startswith('rtformer demo: no demo video: apt-get download opencv-doc failed '
                          '(E: Unable to locate package opencv-doc)')
    assert err.endswith('pass --video FILE (any video OpenCV reads) or --bag BAG')
    assert list((tmp_path / 'xdg' / 'rtformer_ros').iterdir()) == []
