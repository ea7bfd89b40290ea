"""Shared fixtures: where ../shared is, one random ROS_DOMAIN_ID per test session, and the `ros` marker."""

from __future__ import annotations

import os
import random
import types
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('RTFORMER_SHARED', REPO.parent / 'shared'))
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')
RCLPY_DISTROS = {'3': 'humble', '7': 'jazzy', '9': 'kilted'}  # rclpy's major version -> its ROS 2 release

# A random domain per session, set before any test imports rclpy or starts a node, so parallel runs on one
# machine never see each other. Child processes inherit it through os.environ.
os.environ['ROS_DOMAIN_ID'] = str(random.Random().randint(1, 101))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'ros: uses rclpy or ROS messages, or starts a node; scripts/test.sh runs these '
                                       'on every tested ROS 2 distribution (-m ros)')


def _uses_ros(module: types.ModuleType) -> bool:
    """Whether a test module imports rclpy, a ROS interface package, the node client or the ROS test helpers."""
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, '__module__', None)
        top = name.partition('.')[0] if isinstance(name, str) else ''
        ros = top in ('rclpy', 'ros_helpers') or top.endswith(('_msgs', '_interfaces'))
        if ros or name == 'rtformer_ros.ros.client':
            return True
    return False


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests of modules that import ROS are `ros` by themselves, so a new one cannot be left out of the Jazzy run;
    # a module that starts a node without importing ROS (through a CLI) marks itself: pytestmark = pytest.mark.ros.
    for item in items:
        module = getattr(item, 'module', None)
        if isinstance(module, types.ModuleType) and _uses_ros(module):
            item.add_marker(pytest.mark.ros)


def ros_distribution() -> str:
    """Which ROS 2 the tests import, e.g. 'jazzy (rclpy 7.1.6, PyPI wheels)', for the summary of every run."""
    try:
        rclpy_version = version('ros-rclpy')
    except PackageNotFoundError:  # a sourced ROS 2 install: its rclpy has no wheel metadata
        return f'{os.environ.get("ROS_DISTRO", "unknown")} (rclpy of the sourced ROS 2 install)'
    return f'{RCLPY_DISTROS.get(rclpy_version.split(".")[0], "unknown")} (rclpy {rclpy_version}, PyPI wheels)'


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f'ROS 2 {ros_distribution()}, {os.environ["RMW_IMPLEMENTATION"]}', bold=True)


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
def probe(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The tests' client of the node (``ros_helpers.Probe``), one per test module; started after the module's node
    process where the module has a ``node`` fixture."""
    from ros_helpers import Probe

    if hasattr(request.module, 'node'):
        request.getfixturevalue('node')
    with Probe('rtformer_probe') as client:
        yield client
