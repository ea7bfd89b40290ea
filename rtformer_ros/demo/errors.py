"""The one exception of the demo."""

from __future__ import annotations

from rtformer_ros.errors import RtformerError

__all__ = ['DemoError']


class DemoError(RtformerError, RuntimeError):
    """The demo cannot run: no video, no model, or the node did not start or answer."""
