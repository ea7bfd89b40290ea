"""Shared fixtures: where ../shared is, and one random ROS_DOMAIN_ID per test session."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('RTFORMER_SHARED', REPO.parent / 'shared'))
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')

# A random domain per session, set before any test imports rclpy or starts a node, so parallel runs on one
# machine never see each other. Child processes inherit it through os.environ.
os.environ['ROS_DOMAIN_ID'] = str(random.Random().randint(1, 101))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


def shared_path(*parts: str) -> Path:
    """A path under ../shared; in CI a missing one fails the test, elsewhere it skips with the reason."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f'{path} not found (set RTFORMER_SHARED to the shared folder)'
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope='session')
def camvid_dir() -> Path:
    return shared_path('data', 'camvid')


@pytest.fixture(scope='session')
def paddle_fixtures() -> Path:
    return shared_path('fixtures', 'paddleseg')


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny hand-built ONNX graph with the exported contract (CamVid classes, 64x80, with confidence)."""
    from tiny_model import make_tiny_model

    path = tmp_path_factory.mktemp('models') / 'tiny_camvid_64x80.onnx'
    return make_tiny_model(path, size=(64, 80), confidence=True)


@pytest.fixture(scope='module')
def probe(node):  # noqa: ANN001 - `node` is the node process fixture of the requesting test module
    """An rclpy client in this process, started after the module's node process (``node`` fixture)."""
    from rtformer_ros.ros.probe import Probe

    with Probe() as client:
        yield client
