"""Launch rtformer_node: RTFormer semantic segmentation of one camera, or of several with cameras:=.

    ros2 launch rtformer_ros rtformer.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info
    ros2 launch rtformer_ros rtformer.launch.py variant:=base model:=/models/rtformer_base_camvid.onnx
    ros2 launch rtformer_ros rtformer.launch.py image:=/camera/image_raw input_transport:=compressed rviz:=true
    ros2 launch rtformer_ros rtformer.launch.py namespace:=/robot cameras:=front,rear respawn:=true
    ros2 launch rtformer_ros rtformer.launch.py managed:=true          # lifecycle node, configured and activated

Parameters come from config/rtformer_<variant>.yaml (or params_file:=..., which must exist); the model,
input_transport and cameras arguments override it only when given. Topics and parameters: docs/node.md.
"""

from __future__ import annotations

import os
import re

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

PACKAGE = 'rtformer_ros'
NODE_NAME = 'rtformer_node'
EXECUTABLES = {'false': 'rtformer_node', 'true': 'rtformer_lifecycle_node'}  # by the `managed` argument
RESPAWN_DELAY_S = 2.0  # after a crash (e.g. exit after repeated inference failures), before the restart
LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal']


def _arg(context: LaunchContext, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _lifecycle_events(node: LifecycleNode) -> list:
    """Autostart: configure the node each time its process starts (so a respawned node comes back too), and
    activate it when that configure ends; a later deliberate deactivate (active -> inactive) is left alone."""
    def change(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition))

    return [
        RegisterEventHandler(OnProcessStart(target_action=node, on_start=[change(Transition.TRANSITION_CONFIGURE)])),
        RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, start_state='configuring',
                                               goal_state='inactive',
                                               entities=[change(Transition.TRANSITION_ACTIVATE)])),
    ]


def _actions(context: LaunchContext) -> list:
    """The node (plain or managed) and RViz, built once the arguments are known."""
    params_file = _arg(context, 'params_file')
    # launch_ros only warns about a missing params file and the node then runs on its defaults: refuse instead.
    if not os.path.isfile(params_file):
        raise FileNotFoundError(f'rtformer.launch.py: params_file {params_file} does not exist')
    overrides: dict[str, object] = {
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
    }
    # Empty means "as in the params file": passing '' would override the file with nothing.
    for name in ('model', 'input_transport'):
        value = _arg(context, name)
        if value:
            overrides[name] = value
    # cameras:=front,rear or cameras:='[front, rear]'; each camera reads <cam>/image and <cam>/camera_info.
    cameras = [name for name in re.split(r'[\s,\[\]]+', _arg(context, 'cameras')) if name]
    remappings = []
    if cameras:
        overrides['cameras'] = cameras
        if (_arg(context, 'image'), _arg(context, 'camera_info')) != ('image', 'camera_info'):
            raise ValueError('rtformer.launch.py: image:= and camera_info:= remap a single camera; with cameras:= '
                             'each camera reads <camera>/image and <camera>/camera_info (remap those in your launch)')
    else:
        image = _arg(context, 'image')
        remappings = [
            ('image', image),
            ('image/compressed', f'{image}/compressed'),
            ('camera_info', _arg(context, 'camera_info')),
        ]
    managed = _arg(context, 'managed')
    node_class = LifecycleNode if managed == 'true' else Node
    node = node_class(
        package=PACKAGE,
        executable=EXECUTABLES[managed],
        name=NODE_NAME,
        namespace=LaunchConfiguration('namespace'),
        parameters=[params_file, overrides],
        remappings=remappings,
        ros_arguments=['--log-level', _arg(context, 'log_level')],
        respawn=_arg(context, 'respawn') == 'true',
        respawn_delay=RESPAWN_DELAY_S,
        output='screen',
        emulate_tty=True,
    )
    actions = [node]
    if managed == 'true' and _arg(context, 'autostart') == 'true':
        actions = [*_lifecycle_events(node), node]  # handlers first: they must be there when the process starts
    if _arg(context, 'rviz') == 'true':
        rviz_config = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'rtformer.rviz'])
        actions.append(Node(package='rviz2', executable='rviz2', arguments=['-d', rviz_config], output='log'))
    return actions


def generate_launch_description() -> LaunchDescription:
    """Launch arguments, then the node (built once they are known)."""
    bool_choices = ['true', 'false']
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
        DeclareLaunchArgument('cameras', default_value='',
                              description='Camera names, e.g. front,rear: <cam>/image in, <cam>/segmentation/* '
                                          'out, one engine; empty: the params file decides (one camera)'),
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the node and its outputs'),
        # Not PathJoinSubstitution([..., ['rtformer_', variant, '.yaml']]): a nested list loads on Kilted's launch
        # only (ros2/launch#838); this form loads on Jazzy's too.
        DeclareLaunchArgument('params_file',
                              default_value=[PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'rtformer_']),
                                             LaunchConfiguration('variant'), '.yaml'],
                              description='Parameters YAML (default config/rtformer_<variant>.yaml); must exist'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=bool_choices,
                              description='Use /clock (bag replay)'),
        DeclareLaunchArgument('input_transport', default_value='', choices=['', 'raw', 'compressed'],
                              description="raw: image; compressed: <image>/compressed; '': the params file's"),
        DeclareLaunchArgument('log_level', default_value='info', choices=LOG_LEVELS,
                              description='Log level of the node'),
        DeclareLaunchArgument('respawn', default_value='false', choices=bool_choices,
                              description=f'Restart the node {RESPAWN_DELAY_S:g} s after it exits'),
        DeclareLaunchArgument('managed', default_value='false', choices=bool_choices,
                              description='true: the lifecycle node rtformer_lifecycle_node instead of rtformer_node'),
        DeclareLaunchArgument('autostart', default_value='true', choices=bool_choices,
                              description='With managed:=true: configure and activate it at start; '
                                          'false: leave it unconfigured for a lifecycle manager'),
        DeclareLaunchArgument('rviz', default_value='false', choices=bool_choices,
                              description='Also start rviz2 with config/rtformer.rviz'),
        OpaqueFunction(function=_actions),
    ])
