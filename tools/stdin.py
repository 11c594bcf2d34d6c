"""A stdin the server can close itself: a reader waiting on it gets EOF at once, as if the client had
closed it.

The SDK reads stdin in a worker thread that nothing can interrupt, and the server cannot exit while it
waits: a stop signal would hold the process until the client's next line, or forever. ``closable_stdin``
puts a stand-in in ``sys.stdin`` that any reader of ``sys.stdin`` uses unchanged: a daemon thread copies
the real stdin into it (at most ``_MAX_BUFFERED`` chunks ahead of the reader, so a fast client cannot
make it grow), and ``close`` ends it for the reader at once. The copying thread may stay blocked on the
real stdin; as a daemon it does not keep the process alive. File descriptor 0 points at the null device
meanwhile, as the SDK's own set-up does, so that no child can read the protocol.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_CHUNK: Final = 65536
_MAX_BUFFERED: Final = 16


class _Relay(io.RawIOBase):
    """Bytes copied from a file descriptor by a thread, until its EOF or ``end``."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._chunks or self._ended)
            if not self._chunks:
                return 0
            chunk, target = self._chunks.popleft(), memoryview(buffer).cast("B")
            size = min(len(target), len(chunk))
            target[:size] = chunk[:size]
            if size < len(chunk):
                self._chunks.appendleft(chunk[size:])
            self._changed.notify_all()
            return size

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def copy_from(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, _CHUNK)
            except OSError:
                data = b""
            with self._changed:
                self._changed.wait_for(lambda: len(self._chunks) < _MAX_BUFFERED or self._ended)
                if self._ended:
                    return
                if not data:
                    self._ended = True
                else:
                    self._chunks.append(data)
                self._changed.notify_all()


@contextlib.contextmanager
def closable_stdin() -> Generator[Callable[[], None], None, None]:
    """``sys.stdin`` replaced by a stand-in; yields what closes it."""
    source = os.dup(0)  # never closed: the copying thread may still read it after this returns
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    relay = _Relay()
    threading.Thread(target=relay.copy_from, args=(source,), name="stdin", daemon=True).start()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BufferedReader(relay), encoding="utf-8", errors="replace")
    try:
        yield relay.end
    finally:
        relay.end()
        sys.stdin = saved
        os.dup2(source, 0)
