"""The package installs the way ROS 2 expects: colcon layout, a consistent package.xml, resolvable console scripts."""

from __future__ import annotations

import ast
import filecmp
import functools
import importlib
import os
import re
import runpy
import subprocess
import sys
from importlib.metadata import packages_distributions
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import setuptools
from conftest import IN_CI, REPO

PACKAGE = 'rtformer_ros'
MANIFEST = ElementTree.parse(REPO / 'package.xml').getroot()
RUN_DEPENDS = [dep.text for dep in MANIFEST.iter() if dep.tag in ('depend', 'exec_depend')]
TEST_DEPENDS = [dep.text for dep in MANIFEST.iter() if dep.tag == 'test_depend']
# rosdep keys of plain Python packages -> the module they provide; other keys are ROS packages named like their module.
PYTHON_KEY_MODULES = {
    'python3-numpy': 'numpy',
    'python3-opencv': 'cv2',
    'python3-yaml': 'yaml',
    'python3-tqdm': 'tqdm',
    'python3-pil': 'PIL',
    'python3-matplotlib': 'matplotlib',
    'python3-pytest': 'pytest',
}
# ROS packages without PyPI wheels: importable only where a ROS 2 install is sourced.
NOT_ON_PYPI = {'launch', 'launch_ros'}
# Source of the installed data: every launch and config file, and the deployable files in models/.
DATA_DIRS = {'launch': ('*',), 'config': ('*',), 'models': ('*.onnx', '*.pt', 'README.md')}
COLCON_MODULES = ('colcon', 'colcon_ros', 'colcon_python_setup_py', 'colcon_package_selection')


def module_of(key: str) -> str:
    """The Python module a rosdep key provides."""
    if key in PYTHON_KEY_MODULES:
        return PYTHON_KEY_MODULES[key]
    assert not key.startswith('python3-'), f'package.xml: add rosdep key {key} to PYTHON_KEY_MODULES in {__file__}'
    return key


def read_setup() -> dict[str, Any]:
    """The keyword arguments setup.py passes to setuptools.setup(), read by running it from the source root."""
    captured: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # setup.py globs relative to its directory, as pip and colcon run it
        patch.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
        runpy.run_path(str(REPO / 'setup.py'), run_name='__main__')
    return captured


SETUP = read_setup()
CONSOLE_SCRIPTS = dict(
    (part.strip() for part in entry.split('=', 1)) for entry in SETUP['entry_points']['console_scripts']
)


@functools.cache
def imported_modules() -> dict[str, list[str]]:
    """Third-party top-level modules imported by the package and its launch files -> the files importing them."""
    found: dict[str, list[str]] = {}
    for path in sorted([*REPO.glob(f'{PACKAGE}/**/*.py'), *REPO.glob('launch/*.py')]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition('.')[0]
                if top not in sys.stdlib_module_names and top not in (PACKAGE, '__future__'):
                    found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def requirement_names() -> set[str]:
    """Normalised distribution names pinned in requirements.txt and requirements-dev.txt."""
    names = set()
    for req_file in ('requirements.txt', 'requirements-dev.txt'):
        for line in (REPO / req_file).read_text().splitlines():
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                names.add(normalise(re.split(r'[\s=<>!~;\[]', line, maxsplit=1)[0]))
    return names


def normalise(dist: str) -> str:
    """A distribution name in PEP 503 normal form (lower case, runs of -_. as one dash)."""
    return re.sub(r'[-_.]+', '-', dist).lower()


# --- package.xml ---------------------------------------------------------------------------------------------------


def test_package_xml_is_format_3_ament_python_and_matches_setup_py():
    assert MANIFEST.tag == 'package' and MANIFEST.get('format') == '3'
    assert MANIFEST.findtext('export/build_type') == 'ament_python'
    assert (MANIFEST.findtext('name'), MANIFEST.findtext('version')) == (SETUP['name'], SETUP['version'])
    assert SETUP['name'] == PACKAGE and (REPO / 'resource' / PACKAGE).is_file()
    assert re.fullmatch(r'\d+\.\d+\.\d+', SETUP['version'])
    assert importlib.import_module(PACKAGE).__version__ == SETUP['version']


@pytest.mark.parametrize('key', RUN_DEPENDS + TEST_DEPENDS)
def test_package_xml_dependency_is_importable(key: str):
    module = module_of(key)
    # A bare namespace spec (no origin) is a folder on sys.path, such as our own launch/, not the module.
    if key in NOT_ON_PYPI and not getattr(find_spec(module), 'origin', None) and not os.environ.get('ROS_DISTRO'):
        pytest.skip(f'{key} has no PyPI wheel; it is checked where a ROS 2 install is sourced')
    imported = importlib.import_module(module + '.msg' if key.endswith('_msgs') else module)
    assert getattr(imported, '__file__', None), f'{key}: `import {module}` found only a folder, {imported.__path__}'


@pytest.mark.parametrize('key', RUN_DEPENDS)
def test_package_xml_run_dependency_is_used_by_the_code(key: str):
    used = module_of(key) in imported_modules()
    assert used, f'package.xml declares {key}, but no file in {PACKAGE}/ or launch/ imports it'


def test_every_third_party_import_is_a_declared_dependency():
    pinned = requirement_names()
    declared = {module_of(key) for key in RUN_DEPENDS}
    distributions = packages_distributions()
    problems = []
    for module, files in imported_modules().items():
        dists = {normalise(dist) for dist in distributions.get(module, [])}
        where = ', '.join(sorted(set(files)))
        if not dists and module not in declared:
            problems.append(f'{module} (imported by {where}) is not installed and not in package.xml')
        elif dists and not dists & pinned:
            problems.append(f'{module} (imported by {where}): pin one of {sorted(dists)} in requirements.txt')
        if any(dist.startswith('ros-') for dist in dists) and module not in declared:
            problems.append(f'{module} (imported by {where}) is a ROS package: add <exec_depend>{module}'
                            '</exec_depend> to package.xml')
    assert not problems, '\n'.join(problems)


# --- console scripts -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', sorted(CONSOLE_SCRIPTS))
def test_console_script_resolves_to_a_callable(name: str):
    module_name, _, attr = CONSOLE_SCRIPTS[name].partition(':')
    target = importlib.import_module(module_name)
    for part in attr.split('.'):
        target = getattr(target, part)
    assert callable(target), f'{name} = {CONSOLE_SCRIPTS[name]} is not callable'


# --- colcon build --------------------------------------------------------------------------------------------------


def source_entries() -> list[str]:
    """Top-level names git would put in a commit (tracked or new, not ignored): what a clean clone holds."""
    listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return sorted({name.split('/', 1)[0] for name in listed if (REPO / name).exists()})


@pytest.fixture(scope='module')
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`colcon build --packages-select rtformer_ros` of this source tree in a fresh workspace; its install prefix."""
    missing = [name for name in COLCON_MODULES if find_spec(name) is None]
    if missing:
        reason = f'colcon is not installed ({", ".join(missing)} missing): run scripts/setup_env.sh'
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    workspace = tmp_path_factory.mktemp('colcon_ws')
    source = workspace / 'src' / PACKAGE
    source.mkdir(parents=True)
    for name in source_entries():  # symlinks: no copy of models, and .venv/.git/build stay out
        (source / name).symlink_to(REPO / name)
    env = dict(os.environ, COLCON_HOME=str(workspace / '.colcon'), COLCON_LOG_PATH=str(workspace / 'log'))
    result = subprocess.run([sys.executable, '-m', 'colcon', 'build', '--packages-select', PACKAGE], cwd=workspace,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f'colcon build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}'
    return workspace / 'install' / PACKAGE


def test_colcon_installs_executables_where_ros2_run_finds_them(colcon_install: Path):
    for name in CONSOLE_SCRIPTS:
        script = colcon_install / 'lib' / PACKAGE / name
        assert script.is_file() and os.access(script, os.X_OK), f'{script} missing or not executable'


def test_colcon_installs_package_xml_and_ament_index_marker(colcon_install: Path):
    assert (colcon_install / 'share' / PACKAGE / 'package.xml').is_file()
    assert (colcon_install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()


def test_colcon_installs_every_python_module(colcon_install: Path):
    (site,) = colcon_install.glob('lib/python*/*-packages')
    missing = [str(path.relative_to(REPO)) for path in sorted(REPO.glob(f'{PACKAGE}/**/*.py'))
               if '__pycache__' not in path.parts and not (site / path.relative_to(REPO)).is_file()]
    assert not missing, f'not installed (a folder without __init__.py?): {missing}'


@pytest.mark.parametrize('folder', sorted(DATA_DIRS))
def test_colcon_installs_every_data_file(colcon_install: Path, folder: str):
    sources = sorted({path for pattern in DATA_DIRS[folder] for path in (REPO / folder).glob(pattern)
                      if path.is_file()})
    installed = colcon_install / 'share' / PACKAGE / folder
    for path in sources:
        target = installed / path.name
        assert target.is_file(), f'{folder}/{path.name} is not installed to {installed}'
        # Weights can be large: size is enough for them; text files must match byte for byte.
        if folder == 'models':
            assert target.stat().st_size == path.stat().st_size
        else:
            assert filecmp.cmp(path, target, shallow=False), f'{target} differs from {path}'


def test_installed_rtformer_cli_runs_from_the_workspace(colcon_install: Path):
    (site,) = colcon_install.glob('lib/python*/*-packages')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get('PYTHONPATH')])))
    # cwd outside the source tree: `python -c` puts the cwd first on sys.path, before PYTHONPATH.
    where = subprocess.run([sys.executable, '-c', f'import {PACKAGE}; print({PACKAGE}.__file__)'], env=env,
                           cwd=colcon_install, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), f'{PACKAGE} was imported from {where}, not from the workspace'
    result = subprocess.run([str(colcon_install / 'lib' / PACKAGE / 'rtformer'), '--help'], env=env,
                            cwd=colcon_install, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f'rtformer --help exited {result.returncode}:\n{result.stderr[-3000:]}'
    assert 'usage' in result.stdout.lower()


# --- README --------------------------------------------------------------------------------------------------------


def test_readme_quick_start_is_two_executable_scripts():
    section = (REPO / 'README.md').read_text().split('\n## Quick start\n', 1)[1].split('\n## ', 1)[0]
    blocks = re.findall(r'```bash\n(.*?)```', section, re.DOTALL)
    assert len(blocks) == 1, 'Quick start must hold exactly one bash block'
    commands = blocks[0].split()
    assert commands == ['./scripts/demo.sh', './scripts/test.sh']
    for command in commands:
        script = REPO / command
        assert os.access(script, os.X_OK), f'{command} is not executable (chmod +x, then git add)'


def test_readme_layout_matches_the_tree():
    section = (REPO / 'README.md').read_text().split('\n## Layout\n', 1)[1].split('\n## ', 1)[0]
    (block,) = re.findall(r'```\n(.*?)```', section, re.DOTALL)
    named = set(re.findall(r'[\w.-]+/?', block))
    package = {f'{path.name}/' if path.is_dir() else path.name for path in (REPO / PACKAGE).iterdir()
               if path.suffix == '.py' and path.name != '__init__.py' or (path / '__init__.py').is_file()}
    folders = {f'{name}/' for name in source_entries() if (REPO / name).is_dir() and not name.startswith('.')}
    assert not (package | folders) - named, f'README.md Layout does not name {sorted((package | folders) - named)}'
    # Each entry of the package part (indented under rtformer_ros/) exists.
    listed = re.findall(r'^  ([\w.]+/?) ', block, re.M)
    assert listed and not set(listed) - package, f'README.md Layout names {sorted(set(listed) - package)}'


# --- pip install ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def pip_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install .` of this source tree into a fresh prefix (laid out like a venv); the prefix."""
    prefix = tmp_path_factory.mktemp('pip_prefix')
    # No build isolation: CI may have no index to fetch setuptools from; this venv's (79) builds the wheel as pip's.
    # --ignore-installed: without it pip first uninstalls the venv's own (editable) rtformer_ros, which removes the
    # console scripts and the import hook that the rest of the suite, test.sh's next run and the demo rely on.
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation',
                             '--ignore-installed', '--prefix', str(prefix), str(REPO)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f'pip install . failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return prefix


def test_pip_install_gives_ros2_run_and_launch_ros_their_executables(pip_prefix: Path):
    (site,) = pip_prefix.glob('lib/python*/site-packages')
    env = dict(os.environ, PYTHONPATH=str(site), AMENT_PREFIX_PATH=str(pip_prefix))
    # What `ros2 run` and launch_ros do: the package prefix from the ament index, then <prefix>/lib/<package>/<name>.
    found = subprocess.run([sys.executable, '-c', 'from ament_index_python.packages import get_package_prefix; '
                            f'print(get_package_prefix("{PACKAGE}"))'], env=env, cwd=pip_prefix,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found) == pip_prefix
    for name in CONSOLE_SCRIPTS:
        assert os.access(pip_prefix / 'lib' / PACKAGE / name, os.X_OK), f'lib/{PACKAGE}/{name} missing'
    assert (pip_prefix / 'share' / PACKAGE / 'launch' / 'rtformer.launch.py').is_file()
    help_text = subprocess.run([str(pip_prefix / 'lib' / PACKAGE / 'rtformer'), '--help'], env=env, cwd=pip_prefix,
                               capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and 'usage' in help_text.stdout.lower(), help_text.stderr[-3000:]
    # The node's wrapper runs the node itself: a missing model is its one-line error, exit 1.
    node = subprocess.run([str(pip_prefix / 'lib' / PACKAGE / 'rtformer_node'), '--ros-args', '-p',
                           'model:=/no/such.onnx'], env=env, cwd=pip_prefix, capture_output=True, text=True,
                          timeout=120)
    assert node.returncode == 1 and node.stderr.startswith('rtformer_node: ') and '/no/such.onnx' in node.stderr, (
        node.stderr[-3000:])
    # Imported from the prefix, not from the source tree.
    where = subprocess.run([sys.executable, '-c', f'import {PACKAGE}; print({PACKAGE}.__file__)'], env=env,
                           cwd=pip_prefix, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site)
