"""Drive a running ``rtformer_node`` from outside: start it as a process, feed frames, collect its outputs.

Used by the node tests and ``bench/node_bench.py``; handy for smoke tests on a robot too. ``NodeProcess``
runs the node exactly as ``ros2 run`` would (its own process and DDS participant); ``Probe`` is a separate
rclpy node, with its own context and a background executor, that publishes frames, subscribes to outputs and
calls the node's parameter services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile

from rtformer_ros.errors import RtformerError

__all__ = ['Inbox', 'NodeProcess', 'Probe', 'ProbeError', 'diagnostic_values']

M = TypeVar('M')


class ProbeError(RtformerError, RuntimeError):
    """The node or a topic did not do what was waited for within the timeout."""


class NodeProcess:
    """``rtformer_node`` as a child process; stdout and stderr go to a log file (no pipe to fill up)."""

    def __init__(self, ros_args: Sequence[str] = (), params: dict[str, object] | None = None,
                 env: dict[str, str] | None = None, executable: Sequence[str] | None = None) -> None:
        """Start the node.

        Args:
            ros_args: extra arguments after ``--ros-args`` (``--params-file``, ``-r`` remaps).
            params: ``-p name:=value`` overrides; lists become ``[a,b]``, bools ``true``/``false``.
            env: environment (default: this process's, so ROS_DOMAIN_ID is shared).
            executable: command before ``--ros-args`` (default ``python -m rtformer_ros.ros.node``).
        """
        command = list(executable or [sys.executable, '-m', 'rtformer_ros.ros.node'])
        command.append('--ros-args')
        for name, value in (params or {}).items():
            command += ['-p', f'{name}:={_ros_value(value)}']
        command += list(ros_args)
        self.command = command
        self._final_output: str | None = None
        self._log = tempfile.NamedTemporaryFile(prefix='rtformer_node_', suffix='.log', delete=False)
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ if env is None else env))

    @property
    def output(self) -> str:
        """Everything the node printed so far (stdout and stderr)."""
        if self._final_output is not None:
            return self._final_output
        return Path(self._log.name).read_text(errors='replace')

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its return code.

        Raises:
            ProbeError: still running after ``timeout`` seconds.
        """
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            msg = f'rtformer_node still running after {timeout} s: {self.output[-2000:]}'
            raise ProbeError(msg) from None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (as Ctrl-C), then SIGKILL if it does not exit in ``timeout`` seconds; the return code."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._final_output = self.output
        Path(self._log.name).unlink(missing_ok=True)


def _ros_value(value: object) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_ros_value(v) for v in value) + ']'
    return str(value)


class Inbox(Generic[M]):
    """Messages received on one subscription, with waits."""

    def __init__(self) -> None:
        self.messages: list[M] = []
        self.subscription: Any = None
        self._changed = threading.Condition()

    def append(self, msg: M) -> None:
        """Add a message (the subscription callback)."""
        with self._changed:
            self.messages.append(msg)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[M], bool] = lambda _: True, timeout: float = 10.0) -> M:
        """The first message (old or new) matching ``predicate``.

        Raises:
            ProbeError: none arrived within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for msg in self.messages[seen:]:
                    if predicate(msg):
                        return msg
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    msg_ = f'no matching message within {timeout} s ({seen} received)'
                    raise ProbeError(msg_)
                self._changed.wait(left)

    def clear(self) -> None:
        """Forget what was received."""
        with self._changed:
            self.messages.clear()


def diagnostic_values(array: DiagnosticArray, name: str) -> dict[str, str] | None:
    """The key/values of status ``name`` in a DiagnosticArray (None if absent), plus 'level' and 'message'."""
    for status in array.status:
        if status.name == name:
            values = {kv.key: kv.value for kv in status.values}
            values.update(level=str(int.from_bytes(status.level, 'little') if isinstance(status.level, bytes)
                                    else status.level), message=status.message)
            return values
    return None


class Probe:
    """A test/benchmark rclpy node in its own context, spun by a background thread."""

    def __init__(self, name: str = 'rtformer_probe', namespace: str = '') -> None:
        self._stamp_sec = 1000
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, namespace=namespace, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f'{name}_spin', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # context shut down under the executor at close()
            pass

    def publisher(self, msg_type: type[M], topic: str, qos: QoSProfile | int = 10) -> Any:
        """A publisher on ``topic``."""
        return self.node.create_publisher(msg_type, topic, qos)

    def subscribe(self, msg_type: type[M], topic: str, qos: QoSProfile | int = 10) -> Inbox[M]:
        """Collect every message on ``topic`` into an Inbox (``unsubscribe`` it when done)."""
        inbox: Inbox[M] = Inbox()
        inbox.subscription = self.node.create_subscription(msg_type, topic, inbox.append, qos)
        return inbox

    def unsubscribe(self, inbox: Inbox[Any]) -> None:
        """Destroy the subscription behind ``inbox``."""
        self.node.destroy_subscription(inbox.subscription)

    def next_stamp(self) -> Time:
        """A stamp no earlier frame of this probe used (whole seconds from 1000 up), to match outputs."""
        self._stamp_sec += 1
        return Time(sec=self._stamp_sec, nanosec=0)

    def exchange(self, publisher: Any, make_msg: Callable[[Time], Any], inboxes: Sequence[Inbox[Any]],
                 timeout: float = 20.0, retry: float = 1.0) -> list[Any]:
        """Publish frames until every inbox got the output of one of them; those outputs, in inbox order.

        Each try uses a fresh stamp, so it also rides out discovery (a lazily published output only
        appears once the node has seen the subscription).

        Raises:
            ProbeError: no frame got through within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            stamp = self.next_stamp()
            publisher.publish(make_msg(stamp))
            try:
                return [inbox.wait_for(lambda m, s=stamp: m.header.stamp == s, min(retry, deadline - time.monotonic()))
                        for inbox in inboxes]
            except ProbeError:
                if time.monotonic() >= deadline:
                    msg = f'no output for frames on {publisher.topic_name} within {timeout} s'
                    raise ProbeError(msg) from None

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` (graph queries) every 20 ms.

        Raises:
            ProbeError: still false after ``timeout`` seconds; the message says ``what`` was awaited.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                msg = f'timed out after {timeout} s waiting for {what}'
                raise ProbeError(msg)
            time.sleep(0.02)

    def wait_for_subscribers(self, publisher: Any, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``publisher`` is matched by ``count`` subscriptions (DDS discovery)."""
        self.wait_until(lambda: publisher.get_subscription_count() >= count, timeout,
                        f'{count} subscriber(s) on {publisher.topic_name}')

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``topic`` has ``count`` publishers in the graph."""
        name = self.node.resolve_topic_name(topic)
        self.wait_until(lambda: self.node.count_publishers(name) >= count, timeout, f'a publisher on {name}')

    def call(self, srv_type: Any, service: str, request: Any, timeout: float = 10.0) -> Any:
        """Call ``service`` once and return its response.

        Raises:
            ProbeError: the service is not there or does not answer within ``timeout`` seconds.
        """
        client = self.node.create_client(srv_type, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                msg = f'service {service} not available after {timeout} s'
                raise ProbeError(msg)
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                msg = f'service {service} did not answer within {timeout} s'
                raise ProbeError(msg)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node: str, values: dict[str, object], timeout: float = 10.0) -> list[SetParametersResult]:
        """Set parameters of ``node`` (fully qualified name) through its SetParameters service."""
        request = SetParameters.Request(
            parameters=[ParameterMsg(name=k, value=Parameter(k, value=v).get_parameter_value())
                        for k, v in values.items()])
        return list(self.call(SetParameters, f'{node}/set_parameters', request, timeout).results)

    def get_parameters(self, node: str, names: Sequence[str], timeout: float = 10.0) -> dict[str, Any]:
        """Current values of parameters ``names`` of ``node``, as Python values."""
        response = self.call(GetParameters, f'{node}/get_parameters', GetParameters.Request(names=list(names)),
                             timeout)
        return {name: Parameter.from_parameter_msg(ParameterMsg(name=name, value=value)).value
                for name, value in zip(names, response.values, strict=True)}

    def list_parameters(self, node: str, timeout: float = 10.0) -> list[str]:
        """Names of every parameter ``node`` declared."""
        return list(self.call(ListParameters, f'{node}/list_parameters', ListParameters.Request(),
                               timeout).result.names)

    def close(self) -> None:
        """Destroy the node and shut the context down (stops the executor thread)."""
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self.context.ok():
            self.context.try_shutdown()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
