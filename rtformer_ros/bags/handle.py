"""The open/close protocol that `BagReader` and `BagWriter` share."""

from __future__ import annotations

from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar


class _Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar('T', bound=_Closable)


class BagHandle(Generic[T]):
    """Holds an open rosbags reader or writer; ``with`` opens and closes it and never swallows errors."""

    _handle: T | None = None

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close (idempotent)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def _opened(self) -> T:
        assert self._handle is not None, f'{type(self).__name__} is not open'
        return self._handle
