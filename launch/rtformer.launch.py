"""Launch rtformer_node: RTFormer semantic segmentation of one camera.

    ros2 launch rtformer_ros rtformer.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info
    ros2 launch rtformer_ros rtformer.launch.py variant:=base model:=/models/rtformer_base_camvid.onnx
    ros2 launch rtformer_ros rtformer.launch.py image:=/camera/image_raw input_transport:=compressed

Parameters come from config/rtformer_<variant>.yaml (or params_file:=...); the model and input_transport
arguments override it only when given. Topics and parameters: docs/node.md.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'rtformer_ros'
EXECUTABLE = 'rtformer_node'


def _node(context: LaunchContext) -> list[Node]:
    image = LaunchConfiguration('image').perform(context)
    overrides: dict[str, object] = {
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
    }
    # Empty means "as in the params file": passing '' would override the file with nothing.
    for name in ('model', 'input_transport'):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    return [Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=EXECUTABLE,
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[
            ('image', image),
            ('image/compressed', f'{image}/compressed'),  # a remap of 'image' does not move its sub-topics
            ('camera_info', LaunchConfiguration('camera_info')),
        ],
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    """Launch arguments, then the node (built once they are known)."""
    return LaunchDescription([
        DeclareLaunchArgument('variant', default_value='slim', choices=['slim', 'base'],
                              description='RTFormer variant; picks config/rtformer_<variant>.yaml. '
                                          'No base model ships yet: variant:=base needs model:=...'),
        DeclareLaunchArgument('model', default_value='',
                              description='Exported .onnx (path or name in the models/ share folder); '
                                          'empty: the params file decides'),
        DeclareLaunchArgument('image', default_value='image', description='Input sensor_msgs/Image topic'),
        DeclareLaunchArgument('camera_info', default_value='camera_info',
                              description='Input sensor_msgs/CameraInfo topic (optional)'),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the node and its outputs'),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([
                                  FindPackageShare(PACKAGE), 'config',
                                  ['rtformer_', LaunchConfiguration('variant'), '.yaml']]),
                              description='Parameters YAML (default config/rtformer_<variant>.yaml)'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=['true', 'false'],
                              description='Use /clock (bag replay)'),
        DeclareLaunchArgument('input_transport', default_value='', choices=['', 'raw', 'compressed'],
                              description="raw: image; compressed: <image>/compressed; '': the params file's"),
        OpaqueFunction(function=_node),
    ])
