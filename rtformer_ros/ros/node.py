"""``rtformer_node``: RTFormer semantic segmentation of camera images, served by ONNX Runtime.

Topics are relative (namespaces and remaps work); with ``cameras:=[front, left]`` each name prefixes them.

In:  ``image`` (sensor_msgs/Image) or, with ``input_transport:=compressed``, the resolved ``image`` topic plus
``/compressed`` (sensor_msgs/CompressedImage, as image_transport names it), ``camera_info``.
Out: ``segmentation/labels`` (mono8 class ids at the input size, input header), ``segmentation/color`` and
``segmentation/overlay`` (rgb8, and JPEG on ``.../compressed``), ``segmentation/confidence`` (32FC1 in [0, 1],
if the model has it), ``segmentation/camera_info``, latched ``segmentation/class_info`` (std_msgs/String JSON),
``/diagnostics``. See docs/node.md.

This module holds the plain node and ``main``; the work is in ``segmenter.py``, shared with the managed node of
``lifecycle.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.task import Future

from rtformer_ros import models
from rtformer_ros.engine import EngineError
from rtformer_ros.errors import RtformerError
from rtformer_ros.ros.params import ParamError
from rtformer_ros.ros.segmenter import EXIT_FAILED, Segmenter, class_info_json, output_topics

if TYPE_CHECKING:
    from collections.abc import Callable

    from rtformer_ros.ros.lifecycle import SegmentationLifecycleNode

__all__ = ['EXIT_FAILED', 'NODE_NAME', 'NodeError', 'SegmentationNode', 'class_info_json', 'main',
           'output_topics', 'resolve_model', 'run']

NODE_NAME = 'rtformer_node'


class NodeError(RtformerError, RuntimeError):
    """The node cannot start: a parameter or the model path is unusable."""


def resolve_model(name: str) -> Path:
    """The model file for the ``model`` parameter (rtformer_ros.models.resolve_model, with the node's wording).

    Raises:
        NodeError: empty, or not found anywhere.
    """
    if not name.strip():
        msg = ("parameter 'model' is empty: pass model:=<file.onnx> "
               '(variant:=base needs model:=... until a base model ships)')
        raise NodeError(msg)
    try:
        return models.resolve_model(name)
    except models.ModelNotFoundError as err:
        raise NodeError(str(err)) from None


class SegmentationNode(Node):
    """The plain node: loads the model and starts serving in its constructor (a ``Segmenter`` does the work)."""

    def __init__(self, **kwargs: object) -> None:
        """Declare parameters, load the engine, create publishers and subscriptions, start the worker.

        Raises:
            ParamError: a parameter override is invalid.
            NodeError: the model cannot be found.
            EngineError: the model cannot be loaded.
        """
        super().__init__(NODE_NAME, **kwargs)  # type: ignore[arg-type]
        self.done: Future[int] = Future()  # gets an exit code when the node gives up (on_failure:=exit)
        self._segmenter: Segmenter | None = None  # destroy_node may run on a half-built node
        segmenter = Segmenter(self, self.done.set_result)
        segmenter.configure(resolve_model(str(segmenter.params['model'])))
        self._segmenter = segmenter
        try:
            segmenter.activate()
        except BaseException:
            self.destroy_node()  # the caller never gets this node to destroy: release the engine and the worker
            raise

    def destroy_node(self) -> None:
        """Stop the worker (it finishes the frame in hand), release the engine, then the ROS entities."""
        if self._segmenter is not None:
            self._segmenter.deactivate()
            self._segmenter.cleanup()
            self._segmenter = None
        super().destroy_node()


def run(make_node: Callable[[], SegmentationNode | SegmentationLifecycleNode], args: list[str] | None) -> int:
    """Spin a node until Ctrl-C, shutdown or its ``done`` future; the process's exit code.

    rclpy.init/try_shutdown by hand, not ``with rclpy.init()``: that is a context manager only after Jazzy's
    rclpy 7.1 (Kilted's 9.1 has it), and the node must run on both. A bad model or parameter is one line on
    stderr and 1; giving up after repeated inference failures is ``EXIT_FAILED``; Ctrl-C is a quiet 0.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin_until_future_complete(node, node.done)
        return node.done.result() if node.done.done() else 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except (EngineError, NodeError, ParamError) as err:
        print(f'{NODE_NAME}: {err}', file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def main(args: list[str] | None = None) -> int:
    """``rtformer_node``: run the node; the exit code as ``run`` says."""
    return run(SegmentationNode, args)


if __name__ == '__main__':
    sys.exit(main())
