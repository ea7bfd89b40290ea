"""Launch file, params YAMLs, RViz config and docs/node.md checked against the real node.

Where the real launch/launch_ros packages are installed (a sourced ROS 2, or the throwaway venvs of docs/robot.md,
"Launch under the real launch packages"), the launch file is run by ``LaunchService`` as ``ros2 launch`` runs it,
from the installed package (colcon or pip), and must serve labels. Elsewhere (CI: no wheels of launch exist) those
tests skip, and the node is started with each params file and the remaps the launch file passes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import types
from importlib.metadata import distribution
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import Probe
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from rtformer_ros.image.codec import image_message
from rtformer_ros.ros.client import NodeProcess
from rtformer_ros.ros.node import NODE_NAME, output_topics
from rtformer_ros.ros.params import PARAMETERS
from rtformer_ros.ros.qos import LATCHED_QOS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch' / 'rtformer.launch.py'
CONFIG = REPO / 'config'
VARIANTS = ('slim', 'base')
DECLARED = {spec.name: spec for spec in PARAMETERS}
ARGUMENTS = ['variant', 'model', 'image', 'camera_info', 'cameras', 'namespace', 'params_file', 'use_sim_time',
             'input_transport', 'log_level', 'respawn', 'managed', 'autostart', 'rviz']


class _Entity:
    """Stands in for a launch / launch_ros class: keeps what the launch file passed to it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs


class _Configuration(_Entity):
    def perform(self, context: _Context) -> str:
        return context.values[self.args[0]]


class _Context:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values


_STANDINS = {
    'launch': ('LaunchContext', 'LaunchDescription'),
    'launch.actions': ('DeclareLaunchArgument', 'EmitEvent', 'OpaqueFunction', 'RegisterEventHandler'),
    'launch.event_handlers': ('OnProcessStart',),
    'launch.events': ('matches_action',),
    'launch.substitutions': ('LaunchConfiguration', 'PathJoinSubstitution'),
    'launch_ros.actions': ('LifecycleNode', 'Node'),
    'launch_ros.event_handlers': ('OnStateTransition',),
    'launch_ros.events.lifecycle': ('ChangeState',),
    'launch_ros.parameter_descriptions': ('ParameterValue',),
    'launch_ros.substitutions': ('FindPackageShare',),
}


class LaunchFile:
    """The launch file run as ros2 launch runs it, on stand-ins for launch/launch_ros (no PyPI wheels: the real
    packages run it in the real-launch tests below): its declared arguments, and the actions it builds for given
    argument values."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for module_name, names in _STANDINS.items():
            module = types.ModuleType(module_name)
            for name in names:
                setattr(module, name, _Configuration if name == 'LaunchConfiguration'
                        else type(name, (_Entity,), {}))
            monkeypatch.setitem(sys.modules, module_name, module)
        spec = importlib.util.spec_from_file_location('rtformer_launch', LAUNCH)
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        entities = self.module.generate_launch_description().args[0]
        self.arguments = {e.args[0]: e.kwargs for e in entities if type(e).__name__ == 'DeclareLaunchArgument'}
        (self.opaque,) = (e for e in entities if type(e).__name__ == 'OpaqueFunction')

    def actions(self, **given: str) -> list[_Entity]:
        """What the launch file starts for ``name:=value`` arguments (the others at their defaults)."""
        defaults = {name: kwargs['default_value'] for name, kwargs in self.arguments.items()}
        context = _Context({**defaults, 'params_file': str(CONFIG / 'rtformer_slim.yaml'), **given})
        return self.opaque.kwargs['function'](context)


@pytest.fixture
def launch_file(monkeypatch: pytest.MonkeyPatch) -> LaunchFile:
    return LaunchFile(monkeypatch)


def test_launch_declares_the_documented_arguments(launch_file: LaunchFile) -> None:
    assert list(launch_file.arguments) == ARGUMENTS
    assert launch_file.arguments['variant']['choices'] == list(VARIANTS)
    assert launch_file.arguments['variant']['default_value'] == 'slim'
    # Every argument is in docs/robot.md's table of launch arguments.
    text = (REPO / 'docs' / 'robot.md').read_text()
    missing = [name for name in ARGUMENTS if not re.search(rf'^\| `{name}` \|', text, re.M)]
    assert not missing, f'docs/robot.md has no row for launch argument(s) {missing}'


@pytest.mark.parametrize(('managed', 'kind', 'entry'), [('false', 'Node', 'rtformer_ros.ros.node:main'),
                                                        ('true', 'LifecycleNode', 'rtformer_ros.ros.lifecycle:main')])
def test_launch_runs_the_installed_console_script_of_the_node(launch_file: LaunchFile, managed: str, kind: str,
                                                              entry: str) -> None:
    scripts = {ep.name: ep.value for ep in distribution('rtformer_ros').entry_points if ep.group == 'console_scripts'}
    actions = launch_file.actions(managed=managed, image='/cam/image_raw')
    (node,) = (a for a in actions if type(a).__name__ in ('Node', 'LifecycleNode'))
    assert type(node).__name__ == kind
    assert (node.kwargs['package'], node.kwargs['name']) == ('rtformer_ros', NODE_NAME)
    assert scripts.get(node.kwargs['executable']) == entry
    assert node.kwargs['remappings'] == [('image', '/cam/image_raw'), ('image/compressed', '/cam/image_raw/compressed'),
                                         ('camera_info', 'camera_info')]
    # managed:=true with autostart: configure and activate handlers come first, then the node.
    assert [type(a).__name__ for a in actions] == (['RegisterEventHandler'] * 2 if managed == 'true' else []) + [kind]


def test_launch_refuses_a_missing_params_file_and_image_remaps_with_cameras(launch_file: LaunchFile) -> None:
    with pytest.raises(FileNotFoundError, match='params_file /no/such.yaml does not exist'):
        launch_file.actions(params_file='/no/such.yaml')
    with pytest.raises(ValueError, match='image:= and camera_info:= remap a single camera'):
        launch_file.actions(cameras='front,rear', image='/cam/image_raw')
    (node,) = launch_file.actions(cameras='[front, rear]', model='m.onnx')
    assert node.kwargs['remappings'] == [] and node.kwargs['parameters'][1]['cameras'] == ['front', 'rear']
    assert node.kwargs['parameters'][1]['model'] == 'm.onnx'


@pytest.mark.parametrize('variant', VARIANTS)
def test_launch_params_yaml_holds_only_declared_parameters(variant: str) -> None:
    data = yaml.safe_load((CONFIG / f'rtformer_{variant}.yaml').read_text())
    assert list(data) == ['/**'] and list(data['/**']) == ['ros__parameters']
    params = data['/**']['ros__parameters']
    assert set(params) <= set(DECLARED), set(params) - set(DECLARED)
    for name, value in params.items():
        assert type(value) is type(DECLARED[name].default), name
        if DECLARED[name].choices:
            assert value in DECLARED[name].choices, name
    # No base model ships yet: the node must stop and ask for one rather than run slim weights as "base".
    assert params.get('model', DECLARED['model'].default) == ('' if variant == 'base' else DECLARED['model'].default)


def test_rviz_config_shows_every_image_without_tf() -> None:
    rviz = yaml.safe_load((CONFIG / 'rtformer.rviz').read_text())
    displays = rviz['Visualization Manager']['Displays']
    # Only Image displays: they draw without TF, so a robot (or a bag) without transforms shows everything.
    assert {display['Class'] for display in displays} == {'rviz_default_plugins/Image'}
    topics = [display['Topic']['Value'] for display in displays if display['Enabled']]
    assert topics == ['/image', '/segmentation/overlay', '/segmentation/color', '/segmentation/confidence']
    published = {f'/{topic}' for topic in output_topics()} | {'/image'}
    assert set(topics) <= published
    confidence = displays[-1]  # probabilities: a fixed 0..1 range, not stretched per frame
    assert (confidence['Normalize Range'], confidence['Min Value'], confidence['Max Value']) == (False, 0, 1)


def test_docs_list_every_parameter_and_topic() -> None:
    text = (REPO / 'docs' / 'node.md').read_text()
    for spec in PARAMETERS:
        assert re.search(rf'^\| `{re.escape(spec.name)}` \|', text, re.M), spec.name
    for topic in (*output_topics(), 'image', 'image/compressed', 'camera_info', '/diagnostics'):
        assert f'`{topic}`' in text, topic



@pytest.mark.parametrize('variant', VARIANTS)
def test_launch_params_file_starts_the_node(variant: str, probe: Probe, tiny_model: Path) -> None:
    # As the launch file does: the params file, then model:=... from the launch argument.
    args = ['--params-file', str(CONFIG / f'rtformer_{variant}.yaml'), '-p', f'model:={tiny_model}']
    with NodeProcess(ros_args=args) as node:
        inbox = probe.subscribe(String, 'segmentation/class_info', LATCHED_QOS)
        try:
            inbox.wait_for(timeout=30)
            values = probe.get_parameters(f'/{NODE_NAME}', ['model', 'input_qos', 'overlay_alpha', 'max_pixels'])
        finally:
            probe.unsubscribe(inbox)
        assert node.alive(), node.output
    params = yaml.safe_load((CONFIG / f'rtformer_{variant}.yaml').read_text())['/**']['ros__parameters']
    assert values == {'model': str(tiny_model), 'input_qos': params['input_qos'],
                      'overlay_alpha': params['overlay_alpha'], 'max_pixels': params['max_pixels']}


def test_launch_base_variant_without_a_model_says_what_to_pass() -> None:
    with NodeProcess(ros_args=['--params-file', str(CONFIG / 'rtformer_base.yaml')]) as node:
        assert node.wait(60) == 1
    assert node.output.strip().splitlines() == [
        "rtformer_node: parameter 'model' is empty: pass model:=<file.onnx> "
        '(variant:=base needs model:=... until a base model ships)']


def test_launch_remaps_and_namespace_reach_every_topic(probe: Probe, tiny_model: Path) -> None:
    # What the launch file passes for namespace:=robot image:=/cam/image_raw camera_info:=/cam/camera_info.
    args = ['-r', '__ns:=/robot', '-r', 'image:=/cam/image_raw', '-r', 'image/compressed:=/cam/image_raw/compressed',
            '-r', 'camera_info:=/cam/camera_info']
    with NodeProcess(ros_args=args, params={'model': tiny_model}):
        publisher = probe.publisher(Image, '/cam/image_raw', qos_profile_sensor_data)
        labels = probe.subscribe(Image, '/robot/segmentation/labels')
        try:
            probe.wait_for_subscribers(publisher)
            frame = np.zeros((8, 10, 3), np.uint8)
            (out,) = probe.exchange(publisher, lambda stamp: image_message(Header(stamp=stamp), frame, 'rgb8'),
                                    [labels])
            assert (out.height, out.width) == (8, 10)
            assert probe.node.count_subscribers('/cam/camera_info') == 1
            assert probe.node.count_publishers('/robot/segmentation/class_info') == 1
        finally:
            probe.unsubscribe(labels)
            probe.node.destroy_publisher(publisher)


# --- under the real launch/launch_ros: skipped where they are not installed (CI) ---------------------------------

# What `ros2 launch rtformer_ros rtformer.launch.py name:=value ...` does (ros2launch's launch_a_launch_file), from
# the installed package that ament_index finds (a colcon install or a `pip install .` prefix on AMENT_PREFIX_PATH).
RUNNER = """
import sys
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
path = get_package_share_directory('rtformer_ros') + '/launch/rtformer.launch.py'
arguments = [tuple(arg.split(':=', 1)) for arg in sys.argv[1:]]
service = LaunchService(argv=sys.argv[1:])
service.include_launch_description(LaunchDescription([
    IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=arguments)]))
sys.exit(service.run())
"""


@pytest.fixture(scope='module')
def install_prefix() -> Path:
    """Where rtformer_ros is installed for launch_ros: <prefix>/lib/rtformer_ros and <prefix>/share/rtformer_ros."""
    if find_spec('launch') is None or find_spec('launch_ros') is None:
        pytest.skip('launch/launch_ros are not installed (no PyPI wheels): see docs/robot.md for a real-launch run')
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        return Path(get_package_prefix('rtformer_ros'))
    except PackageNotFoundError:
        pytest.skip('rtformer_ros is not installed on AMENT_PREFIX_PATH (colcon build, or pip install . and '
                    'AMENT_PREFIX_PATH=<venv>)')


class LaunchProcess:
    """The launch file under LaunchService in a child process; stopped with SIGINT like Ctrl-C on `ros2 launch`."""

    def __init__(self, *arguments: str) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix='rtformer_launch_', suffix='.log', delete=False)
        self._final_output: str | None = None
        # Its own process group: Ctrl-C in a terminal reaches launch and its nodes at once, and launch counts on it.
        self.process = subprocess.Popen([sys.executable, '-c', RUNNER, *arguments], stdout=self.log,
                                        stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True)

    @property
    def output(self) -> str:
        """Everything launch and its nodes printed so far."""
        if self._final_output is not None:
            return self._final_output
        return Path(self.log.name).read_text(errors='replace')

    def __enter__(self) -> LaunchProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._final_output = self.output
        self.log.close()
        Path(self.log.name).unlink()
        print(self._final_output)  # shown when a test fails


@pytest.mark.parametrize('managed', ['false', 'true'])
def test_real_launch_serves_labels(managed: str, install_prefix: Path, probe: Probe) -> None:
    # launch_ros runs <prefix>/lib/rtformer_ros/<executable>: colcon installs the console scripts there, pip wrappers.
    name = 'rtformer_lifecycle_node' if managed == 'true' else NODE_NAME
    executable = install_prefix / 'lib' / 'rtformer_ros' / name
    if managed == 'true' and not executable.is_file():
        pytest.skip(f'{executable} is not installed (a build without the lifecycle node)')
    assert os.access(executable, os.X_OK), executable
    # The default variant: config/rtformer_slim.yaml and the shipped model, found through the package's share/.
    with LaunchProcess('namespace:=robot', 'image:=/cam/image_raw', f'managed:={managed}') as launch:
        publisher = probe.publisher(Image, '/cam/image_raw', qos_profile_sensor_data)
        labels = probe.subscribe(Image, '/robot/segmentation/labels')
        try:
            probe.wait_for_subscribers(publisher, timeout=90)  # model load; the managed node subscribes on activate
            frame = np.zeros((48, 64, 3), np.uint8)
            (out,) = probe.exchange(publisher, lambda stamp: image_message(Header(stamp=stamp), frame, 'rgb8'),
                                    [labels], timeout=60)
            assert (out.height, out.width, out.encoding) == (48, 64, 'mono8')
        finally:
            probe.unsubscribe(labels)
            probe.node.destroy_publisher(publisher)
        assert launch.process.poll() is None, launch.output
    assert launch.process.returncode == 0 and 'process has finished cleanly' in launch.output, launch.output


@pytest.mark.parametrize(('arguments', 'message'), [
    (['params_file:=/no/such.yaml'], 'params_file /no/such.yaml does not exist'),
    # The default params_file of variant:=base resolves to the installed config/rtformer_base.yaml.
    (['variant:=base'], 'variant:=base needs model:=...'),
])
def test_real_launch_stops_with_the_reason(arguments: list[str], message: str, install_prefix: Path) -> None:
    with LaunchProcess(*arguments) as launch:
        try:
            code = launch.process.wait(90)
        except subprocess.TimeoutExpired:
            pytest.fail(f'launch still running: {launch.output[-3000:]}')
    assert message in launch.output
    if arguments[0].startswith('params_file'):
        assert code != 0, launch.output  # an error of the launch itself, before any node starts
        assert '[rtformer_node' not in launch.output


def test_real_launch_passes_cameras_log_level_and_respawn(install_prefix: Path, probe: Probe) -> None:
    with LaunchProcess('namespace:=robot', 'cameras:=front,rear') as launch:
        probe.wait_until(lambda: probe.node.count_subscribers('/robot/rear/image') >= 1, 90, '/robot/rear/image')
        assert probe.get_parameters(f'/robot/{NODE_NAME}', ['cameras']) == {'cameras': ['front', 'rear']}
        assert launch.process.poll() is None, launch.output
    # A node that exits (here: no such model) is started again; the debug level reaches rcl's own logging.
    with LaunchProcess('model:=/no/such.onnx', 'respawn:=true', 'log_level:=debug') as launch:
        probe.wait_until(lambda: launch.output.count('/no/such.onnx') >= 2, 60, 'a respawned node')
        assert '[DEBUG]' in launch.output


def test_real_launch_managed_node_stays_deactivated(install_prefix: Path, probe: Probe) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    node = f'/robot/{NODE_NAME}'

    def active() -> bool:
        return probe.node.count_subscribers('/robot/image') >= 1  # activate subscribes, deactivate unsubscribes

    with LaunchProcess('namespace:=robot', 'managed:=true') as launch:
        probe.wait_until(active, 90, 'the autostarted node active')
        request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))
        assert probe.call(ChangeState, f'{node}/change_state', request, timeout=60).success
        probe.wait_until(lambda: not active(), 30, 'the node deactivated')
        time.sleep(3)  # autostart activates after configure only: a deliberate deactivate must stay
        state = probe.call(GetState, f'{node}/get_state', GetState.Request(), timeout=30).current_state.label
        assert state == 'inactive' and not active(), launch.output
