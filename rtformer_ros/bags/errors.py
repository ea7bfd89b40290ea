"""The one exception of the bag tools."""

from __future__ import annotations

__all__ = ['BagError']


class BagError(RuntimeError):
    """A bag, topic, dataset or message cannot be used; the message names the path or topic and the problem."""
