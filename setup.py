"""ament_python package: installs with `colcon build` in a ROS 2 workspace or with `pip install .`.

Name and version come from package.xml, which colcon, rosdep and bloom read, so they are written once.
"""

from glob import glob
from pathlib import Path
from xml.etree import ElementTree

from setuptools import find_packages, setup

MANIFEST = ElementTree.parse(Path(__file__).resolve().parent / 'package.xml').getroot()
package_name = MANIFEST.findtext('name')
share = 'share/' + package_name


def files(*patterns: str) -> list[str]:
    """Regular files matching the patterns (relative to the source root), sorted so installs are reproducible."""
    return sorted({path for pattern in patterns for path in glob(pattern) if Path(path).is_file()})


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
)
