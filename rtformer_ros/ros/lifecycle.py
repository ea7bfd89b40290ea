"""``rtformer_lifecycle_node``: the same node as a managed (lifecycle) node, for launch systems that sequence
bring-up (nav2's lifecycle manager, launch_ros ``LifecycleNode``).

Starts unconfigured with its parameters declared. Transitions (``<node>/change_state``, ``<node>/get_state``):

- configure: load the model into an ONNX Runtime session (TensorRT engines are built here where present);
  a missing or broken model fails the transition (the node stays unconfigured, the reason in the log);
- activate: create publishers and subscriptions, start the diagnostics timer and the worker;
- deactivate: stop the worker and destroy them: no callback, no inference, no publishing;
- cleanup: release the session; shutdown (from any state) and errors do whatever of the above is needed.

The work is ``segmenter.Segmenter``, the same as the plain node's; so are topics, parameters and diagnostics.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.task import Future

from rtformer_ros.engine import EngineError
from rtformer_ros.ros.node import NODE_NAME, NodeError, resolve_model, run
from rtformer_ros.ros.segmenter import Segmenter

if TYPE_CHECKING:
    from rclpy.lifecycle import LifecycleState

__all__ = ['SegmentationLifecycleNode', 'main']


class SegmentationLifecycleNode(LifecycleNode):
    """``Segmenter`` driven by the lifecycle transitions."""

    def __init__(self, **kwargs: object) -> None:
        """Declare the parameters; nothing is loaded before configure.

        Raises:
            ParamError: a parameter override is invalid.
        """
        super().__init__(NODE_NAME, **kwargs)  # type: ignore[arg-type]
        self.done: Future[int] = Future()  # gets an exit code when the node gives up (on_failure:=exit)
        self._segmenter = Segmenter(self, self.done.set_result)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._segmenter.configure(resolve_model(str(self._segmenter.params['model'])))
        except (EngineError, NodeError) as err:
            self.get_logger().error(f'configure failed: {err}')
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._segmenter.activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._segmenter.deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._segmenter.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error while {state.label}: releasing everything, back to unconfigured')
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._segmenter.deactivate()
        self._segmenter.cleanup()

    def destroy_node(self) -> None:
        """Stop and release whatever the current state holds, then the ROS entities."""
        self._release()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """``rtformer_lifecycle_node``: run the managed node; exit codes as ``rtformer_node``."""
    return run(SegmentationLifecycleNode, args)


if __name__ == '__main__':
    sys.exit(main())
