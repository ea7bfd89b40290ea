"""The one exception of the demo."""

from __future__ import annotations

__all__ = ['DemoError']


class DemoError(RuntimeError):
    """The demo cannot run: no video, no model, or the node did not start or answer."""
