"""A stdin the server can close itself: a reader waiting on it gets EOF at once, as if the client had
closed it.

The SDK reads stdin in a worker thread that nothing can interrupt, and the server cannot exit while it
waits: a stop signal would hold the process until the client's next line, or forever. ``closable_stdin``
puts a stand-in in ``sys.stdin``, which any reader of ``sys.stdin`` uses unchanged: each read waits for
data on the real stdin or for ``close``, whichever comes first, and ``close`` makes every read from then
on an EOF. File descriptor 0 points at the null device meanwhile, as the SDK's own set-up does, so that
no child can read the protocol.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import sys
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class _Closable(io.RawIOBase):
    """The bytes of a file descriptor until its EOF or ``close_for_readers``."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        # Written once to end every read, and never drained; never closed, as a reader may be polling it.
        self._closed_r, self._closed_w = os.pipe()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        waiting = select.poll()
        waiting.register(self._fd, select.POLLIN)
        waiting.register(self._closed_r, select.POLLIN)
        ready = {fd for fd, _ in waiting.poll()}
        if self._closed_r in ready:
            return 0
        return os.readv(self._fd, [buffer])

    def close_for_readers(self) -> None:
        os.write(self._closed_w, b"x")


@contextlib.contextmanager
def closable_stdin() -> Generator[Callable[[], None], None, None]:
    """``sys.stdin`` replaced by a stand-in; yields what closes it."""
    wire = os.dup(0)  # never closed: a reader may still be polling it
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    stand_in = _Closable(wire)
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BufferedReader(stand_in), encoding="utf-8", errors="replace")
    try:
        yield stand_in.close_for_readers
    finally:
        sys.stdin = saved
        os.dup2(wire, 0)
