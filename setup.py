"""ament_python package: installs with `colcon build` in a ROS 2 workspace or with `pip install .`.

Name and version come from package.xml, which colcon, rosdep and bloom read, so they are written once.
"""

from glob import glob
from pathlib import Path
from xml.etree import ElementTree

from setuptools import find_packages, setup

try:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools 70.1+, as pip's isolated builds get
except ImportError:  # Ubuntu 24.04's setuptools 68, under colcon: `setup.py install` builds no wheel
    bdist_wheel = None

MANIFEST = ElementTree.parse(Path(__file__).resolve().parent / 'package.xml').getroot()
package_name = MANIFEST.findtext('name')
share = 'share/' + package_name


def files(*patterns: str) -> list[str]:
    """Regular files matching the patterns (relative to the source root), sorted so installs are reproducible."""
    return sorted({path for pattern in patterns for path in glob(pattern) if Path(path).is_file()})


WRAPPER = """#!/bin/sh
# `ros2 run` and launch_ros look for executables in <prefix>/lib/{package}; pip puts console scripts in <prefix>/bin.
exec "$(dirname "$0")/../../bin/{name}" "$@"
"""


class BdistWheelWithRosLib(bdist_wheel or object):
    """`pip install .` builds a wheel: it also carries lib/<package>/<script> wrappers calling <prefix>/bin/<script>.

    colcon runs `setup.py install|develop` instead, which setup.cfg already points at lib/<package>.
    """

    def run(self) -> None:
        folder = Path(self.bdist_dir).parent / 'ros_lib'
        folder.mkdir(parents=True, exist_ok=True)
        wrappers = []
        for entry in self.distribution.entry_points['console_scripts']:
            name = entry.split('=')[0].strip()
            wrapper = folder / name
            wrapper.write_text(WRAPPER.format(package=package_name, name=name))
            wrapper.chmod(0o755)  # the wheel keeps the mode, and pip installs it executable
            wrappers.append(str(wrapper))
        self.distribution.data_files.append(('lib/' + package_name, wrappers))
        super().run()


setup(
    name=package_name,
    version=MANIFEST.findtext('version'),
    packages=find_packages(include=[package_name, package_name + '.*']),
    data_files=[
        # ament index marker: lets `ros2 run`/`ros2 launch` and get_package_share_directory find the package.
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        (share, ['package.xml']),
        # Every launch and config file is installed, so a new one cannot be forgotten here.
        (share + '/launch', files('launch/*')),
        (share + '/config', files('config/*')),
        # Only deployable weights and their notes; scratch files in models/ stay out of the install.
        (share + '/models', files('models/*.onnx', 'models/*.pt', 'models/README.md')),
    ],
    # Runtime dependencies live in package.xml (rosdep) and requirements.txt (pip), not here: console scripts made
    # by older setuptools (Ubuntu 22.04) check install_requires against pip metadata, which Debian's python3-*
    # packages installed by rosdep do not carry.
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer=MANIFEST.findtext('maintainer'),
    maintainer_email=MANIFEST.find('maintainer').get('email'),
    description=' '.join(MANIFEST.findtext('description').split()),
    license=MANIFEST.findtext('license'),
    entry_points={
        'console_scripts': [
            'rtformer = rtformer_ros.cli:main',
            'rtformer_node = rtformer_ros.ros.node:main',
            'rtformer_lifecycle_node = rtformer_ros.ros.lifecycle:main',
        ],
    },
    cmdclass={'bdist_wheel': BdistWheelWithRosLib} if bdist_wheel else {},
)
