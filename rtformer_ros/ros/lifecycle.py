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

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.task import Future

from rtformer_ros.engine import EngineError
from rtformer_ros.errors import first_line
from rtformer_ros.ros.node import NODE_NAME, NodeError, resolve_model, run
from rtformer_ros.ros.segmenter import Segmenter

if TYPE_CHECKING:
    from collections.abc import Callable

    from lifecycle_msgs.srv import ChangeState
    from rclpy.impl.rcutils_logger import RcutilsLogger
    from rclpy.lifecycle import LifecycleState

    _Handler = Callable[[ChangeState.Request, ChangeState.Response], ChangeState.Response]

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
        service = self._service_change_state
        service.callback = _refuse_invalid_transitions(service.callback, self.get_logger())

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


def _refuse_invalid_transitions(callback: _Handler, logger: RcutilsLogger) -> _Handler:
    """Answer success=false to a transition the current state does not have.

    rclpy 7.1 (Jazzy) raises RCLError out of the change_state service instead, which ends the executor's spin
    and so the process (`ros2 lifecycle set /rtformer_node activate` from unconfigured would kill the node);
    Kilted's 9.1 answers false itself. The state machine is untouched when the transition cannot start.
    """
    def guarded(request: ChangeState.Request, response: ChangeState.Response) -> ChangeState.Response:
        try:
            return callback(request, response)
        except _rclpy.RCLError as err:
            logger.error(f'change_state {request.transition.label or request.transition.id} refused: '
                         f'{first_line(err)}')
            response.success = False
            return response
    return guarded


def main(args: list[str] | None = None) -> int:
    """``rtformer_lifecycle_node``: run the managed node; exit codes as ``rtformer_node``."""
    return run(SegmentationLifecycleNode, args)


if __name__ == '__main__':
    sys.exit(main())
