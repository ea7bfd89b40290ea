"""The one exception of the bag tools."""

from __future__ import annotations

from rtformer_ros.errors import RtformerError

__all__ = ['BagError']


class BagError(RtformerError, RuntimeError):
    """A bag, topic, dataset or message cannot be used; the message names the path or topic and the problem."""
