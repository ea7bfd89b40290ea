"""Talk to a running ``rtformer_node`` from outside: frames out under a stamp, its outputs back by that stamp.

One client for everything that drives the node: ``rtformer replay``, ``rtformer demo``, ``bench/node_bench.py``
and the node tests (handy for smoke tests on a robot too). ``NodeProcess`` runs the node exactly as ``ros2 run``
would (its own process and DDS participant); ``StampedClient`` is an rclpy node in its own context, spun by a
background thread, that publishes frames and collects the outputs carrying their stamps (``Inbox``).

Frames go out lockstep (``lockstep``: send, wait, resend every ``RESEND_S`` with the same stamp, a miss after the
timeout, an error after ``max_misses`` misses in a row) or timed (``timed``: each at its due time, no resend;
then ``wait`` collects what arrived by a deadline). Stamps are keyed as integer nanoseconds
(``rtformer_ros.util.stamp_ns``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from rtformer_ros.errors import RtformerError
from rtformer_ros.ros.diagnostics import status_name
from rtformer_ros.ros.qos import LATCHED_QOS
from rtformer_ros.util import header_stamp_ns, split_ns, stamp_ns

__all__ = ['FRAME_QOS', 'LATCHED_QOS', 'OUTPUT_QOS', 'RESEND_S', 'ClientError', 'Inbox', 'NodeProcess', 'StampedClient',
           'diagnostic_values', 'large_frames', 'stamp_msg', 'status_name']

M = TypeVar('M')

RESEND_S = 1.0
"""Lockstep: publish a frame again (same stamp) after this long without all its outputs. A lost best-effort
sample, or outputs the node only starts publishing once it has discovered our subscription, cost one interval."""

FRAME_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
"""Frames out. Reliable matches the node's best-effort (default) and reliable inputs alike; depth 1 because the
node wants only the newest frame, and a queue of old ones would only be dropped there."""

OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
"""Outputs in: reliable, like the node's publishers; deep so that a burst never overwrites an answer before the
executor thread took it (callbacks only keep a reference, so the queue stays short in practice).
``LATCHED_QOS`` (the node's, re-exported) subscribes to ``class_info``, latched for late joiners."""


@contextmanager
def large_frames() -> Iterator[None]:
    """Fast DDS's large-data transports in ``os.environ`` inside the block (unless a transport is chosen already).

    Fast DDS's default transports lose best-effort samples above its 512 KB shared-memory segment between processes
    (a 768x576 bgr8 frame never arrives; docs/node.md, "Large frames"); LARGE_DATA is what a camera driver should
    run with. DDS reads it when a participant is created: start the client, and a ``NodeProcess`` that inherits the
    environment, inside the block. The variable is restored after.
    """
    key = 'FASTDDS_BUILTIN_TRANSPORTS'
    saved = os.environ.get(key)
    if os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp').startswith('rmw_fastrtps'):
        os.environ.setdefault(key, 'LARGE_DATA')
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


class ClientError(RtformerError, RuntimeError):
    """The node or a topic did not do what was waited for within the timeout, or the node process exited."""


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
        self.command = command + list(ros_args)
        self._final_output: str | None = None
        self._log = tempfile.NamedTemporaryFile(prefix='rtformer_node_', suffix='.log', delete=False)
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
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

    def failure(self) -> str:
        """Why the node exited: its code and last line of output (call once it has exited)."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return f'rtformer_node exited with code {self.process.wait(5)}: {lines[-1] if lines else "no output"}'

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its return code.

        Raises:
            ClientError: still running after ``timeout`` seconds.
        """
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            msg = f'rtformer_node still running after {timeout} s: {self.output[-2000:]}'
            raise ClientError(msg) from None

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
        if self._final_output is None:  # keep the output, drop the file
            self._final_output = self.output
            Path(self._log.name).unlink(missing_ok=True)
        return self.process.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ros_value(value: object) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_ros_value(v) for v in value) + ']'
    return str(value)


def diagnostic_values(array: DiagnosticArray, name: str) -> dict[str, str] | None:
    """The key/values of status ``name`` in a DiagnosticArray (None if absent), plus 'level' and 'message'."""
    for status in array.status:
        if status.name == name:
            values = {kv.key: kv.value for kv in status.values}
            level = status.level  # bytes on some distributions, int on others
            values.update(level=str(int.from_bytes(level, 'little') if isinstance(level, bytes) else level),
                          message=status.message)
            return values
    return None


def stamp_msg(ns: int) -> Time:
    """Integer nanoseconds as a header stamp."""
    sec, nanosec = split_ns(ns)
    return Time(sec=sec, nanosec=nanosec)


def _stamp_of(msg: Any) -> int | None:
    """The header stamp of a message (typed, or CDR bytes of a raw subscription) in ns; None without a header."""
    if isinstance(msg, (bytes, memoryview)):
        return header_stamp_ns(msg)
    header = getattr(msg, 'header', None)
    return None if header is None else stamp_ns(header.stamp)


class Inbox(Generic[M]):
    """Messages of one subscription: every one in order (``history``), and the first one carrying each stamp the
    client sent, with its receipt time (``answers``), until taken."""

    def __init__(self, client: StampedClient, history: bool) -> None:
        self.messages: list[M] = []
        self.answers: dict[int, tuple[int, M]] = {}  # stamp -> (time.monotonic_ns() at receipt, message)
        self.subscription: Any = None
        self.taken: set[int] = set()  # answers handed out: a resent frame's second answer is not kept
        self._client = client
        self._history = history

    def receive(self, msg: M) -> None:
        """Subscription callback (executor thread): keep a reference, nothing else."""
        now = time.monotonic_ns()
        stamp = _stamp_of(msg)
        with self._client.changed:
            if self._history:
                self.messages.append(msg)
            if stamp in self._client.sent and not self.answered(stamp):
                self.answers[stamp] = (now, msg)
            self._client.changed.notify_all()

    def answered(self, stamp: int) -> bool:
        """Whether an answer with ``stamp`` arrived (taken or not); call with ``client.changed`` held."""
        return stamp in self.answers or stamp in self.taken

    def take(self, stamps: Iterable[int] | None = None) -> dict[int, tuple[int, M]]:
        """Remove and return the answers of ``stamps`` (None: all) as stamp -> (receipt ns, message)."""
        with self._client.changed:
            wanted = list(self.answers) if stamps is None else [s for s in stamps if s in self.answers]
            self.taken.update(wanted)
            return {stamp: self.answers.pop(stamp) for stamp in wanted}

    def wait_for(self, predicate: Callable[[M], bool] = lambda _: True, timeout: float = 10.0) -> M:
        """The first message in the history (old or new) matching ``predicate``.

        Raises:
            ClientError: none arrived within ``timeout`` seconds.
        """
        seen = 0
        found: list[M] = []

        def match() -> bool:
            nonlocal seen
            found.extend(m for m in self.messages[seen:] if predicate(m))
            seen = len(self.messages)
            return bool(found)

        if not self._client.wait_on(match, timeout):
            msg = f'no matching message within {timeout} s ({seen} received)'
            raise ClientError(msg)
        return found[0]

    def clear(self) -> None:
        """Forget the history."""
        with self._client.changed:
            self.messages.clear()


class StampedClient:
    """An rclpy node in its own context, spun by a background thread (see the module docstring).

    Args:
        name: the client's node name.
        node: the node process being driven, if any: waits then fail at once, with its last line, when it exits.
        max_misses: lockstep frames in a row without outputs before ``lockstep`` raises (None: never).
    """

    def __init__(self, name: str = 'rtformer_client', node: NodeProcess | None = None,
                 max_misses: int | None = None) -> None:
        self.process = node
        self.max_misses = max_misses
        self.misses = 0  # lockstep frames in a row without outputs
        self.changed = threading.Condition()  # guards every inbox and ``sent``; notified on each message
        self.sent: dict[int, int] = {}  # stamp -> time.monotonic_ns() of its first publish
        self._stamp_sec = 1000
        self._closing = False
        self._spin_error: Exception | None = None
        self.context = Context()
        # No rclpy signal handlers: Ctrl-C stays a KeyboardInterrupt, and callers close files on the way out.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = Node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f'{name}_spin', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception as err:  # handed to the waiting thread, not lost
            if not self._closing:  # a failing callback: waits raise it instead of timing out as if nothing came
                self._spin_error = err

    # ----------------------------------------------------------------------------------------- topics

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int = FRAME_QOS) -> Any:
        """A publisher on ``topic`` (it also publishes CDR bytes as they are)."""
        return self.node.create_publisher(msg_type, topic, qos)

    def subscribe(self, msg_type: type[M], topic: str, qos: QoSProfile | int = OUTPUT_QOS, *, history: bool = True,
                  raw: bool = False) -> Inbox[M]:
        """An Inbox of ``topic``; ``history=False`` keeps only answers (long runs), ``raw`` CDR bytes."""
        inbox: Inbox[M] = Inbox(self, history)
        inbox.subscription = self.node.create_subscription(msg_type, topic, inbox.receive, qos, raw=raw)
        return inbox

    def unsubscribe(self, inbox: Inbox[Any]) -> None:
        """Destroy the subscription behind ``inbox``."""
        self.node.destroy_subscription(inbox.subscription)

    def next_stamp(self) -> Time:
        """A header stamp no earlier frame of this client used (whole seconds from 1001 up)."""
        self._stamp_sec += 1
        return Time(sec=self._stamp_sec, nanosec=0)

    # --------------------------------------------------------------------------------------- stamped

    def send(self, publisher: Any, stamp: int, msg: Any) -> None:
        """Publish ``msg`` carrying ``stamp`` (ns); outputs with that stamp are kept from now on."""
        with self.changed:
            self.sent.setdefault(stamp, time.monotonic_ns())
        publisher.publish(msg)

    def wait(self, stamps: Iterable[int], inboxes: Sequence[Inbox[Any]], timeout: float) -> bool:
        """Wait until every inbox got an answer for every stamp; False after ``timeout`` seconds."""
        stamps = list(stamps)
        return self.wait_on(lambda: all(inbox.answered(s) for s in stamps for inbox in inboxes), timeout)

    def lockstep(self, publisher: Any, stamp: int, msg: Any, inboxes: Sequence[Inbox[Any]], timeout: float) -> bool:
        """Publish ``msg`` and wait for its answers in every inbox, resending it every ``RESEND_S`` seconds.

        Returns:
            True once all answered; False after ``timeout`` seconds (a miss).

        Raises:
            ClientError: the ``max_misses``-th miss in a row, or the node process exited.
        """
        deadline = time.monotonic() + timeout
        self.send(publisher, stamp, msg)
        while not self.wait([stamp], inboxes, min(RESEND_S, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                self.misses += 1
                if self.max_misses is not None and self.misses >= self.max_misses:
                    transports = os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', 'unset')
                    text = (f'{self.misses} frames in a row got no outputs within {timeout:g} s: frames lost in '
                            f'transport? (FASTDDS_BUILTIN_TRANSPORTS={transports}; see docs/troubleshooting.md)')
                    raise ClientError(text)
                return False
            publisher.publish(msg)
        self.misses = 0
        return True

    def timed(self, publisher: Any, frames: Iterable[tuple[float, int, M]]) -> Iterator[tuple[int, M]]:
        """Publish each ``(due, stamp, msg)`` at ``due`` seconds after the first one, never resent; yields
        ``(stamp, msg)`` once sent (the caller's turn for per-frame work). ``wait`` then collects late answers."""
        start = time.monotonic()
        for due, stamp, msg in frames:
            delay = start + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.send(publisher, stamp, msg)
            yield stamp, msg

    def exchange(self, publisher: Any, make_msg: Callable[[Time], Any], inboxes: Sequence[Inbox[Any]],
                 timeout: float = 20.0) -> list[Any]:
        """One lockstep frame under a fresh stamp (``make_msg`` builds it); its answers, in inbox order.

        Raises:
            ClientError: no answer on every inbox within ``timeout`` seconds.
        """
        stamp = self.next_stamp()
        if not self.lockstep(publisher, stamp_ns(stamp), make_msg(stamp), inboxes, timeout):
            msg = f'no output for frames on {publisher.topic_name} within {timeout} s'
            raise ClientError(msg)
        return [inbox.answers[stamp_ns(stamp)][1] for inbox in inboxes]

    # ------------------------------------------------------------------------------------- the graph

    def wait_on(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (woken by every message, else every 50 ms) until ``condition()``; False after ``timeout`` s.

        Raises:
            ClientError: the node process (``node``) exited.
        """
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                if self._spin_error is not None:
                    raise self._spin_error
                if self.process is not None and not self.process.alive():
                    raise ClientError(self.process.failure())
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.05))
        return True

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """``wait_on``, raising ClientError (naming ``what`` was awaited) after ``timeout`` seconds."""
        if not self.wait_on(condition, timeout):
            msg = f'timed out after {timeout} s waiting for {what}'
            raise ClientError(msg)

    def peers_ready(self, publisher: Any, inboxes: Sequence[Inbox[Any]]) -> bool:
        """Whether ``publisher`` has a subscriber and every inbox a publisher (DDS discovery on our side)."""
        return (publisher.get_subscription_count() > 0
                and all(inbox.subscription.get_publisher_count() > 0 for inbox in inboxes))

    def wait_for_subscribers(self, publisher: Any, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``publisher`` is matched by ``count`` subscriptions (DDS discovery)."""
        self.wait_until(lambda: publisher.get_subscription_count() >= count, timeout,
                        f'{count} subscriber(s) on {publisher.topic_name}')

    def close(self) -> None:
        """Destroy the node and shut the context down (stops the executor thread)."""
        self._closing = True
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self.context.ok():
            self.context.try_shutdown()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> StampedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
