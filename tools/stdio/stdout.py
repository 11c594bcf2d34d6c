"""The server's stdout: every message a line, written where it is made.

The SDK's stdio transport hands each message to a writer task through a memory stream, and that task
writes it through ``anyio.wrap_file``: a ``write`` and a ``flush``, each a trip to a worker thread and
back. Here ``send`` writes the line at once (``os.write`` on the non-blocking wire) when nothing waits
to be written before it: the usual case, a pipe with room, costs no task switch and no thread, which is
a tenth of a ``task_output`` round trip (bench/scale.py's ``rtt``).

Whatever the pipe does not take at once goes, whole and in order, to a backlog that ``run`` (the writer
task, owned by the serving task group) writes as the reader makes room. A line once started is always
finished before the next begins, even if its sender is cancelled, so the wire stays framed. While the
backlog holds more than :data:`HIGH_WATER` bytes a sender waits (without blocking the loop): a client
that stops reading holds up its own answers, never the event loop, and the backlog holds at most that
plus the lines being sent. A regular file cannot be polled: every line goes through the backlog, and
``run`` writes it from a worker thread, as the SDK writes it.

Serving with a stdout of its own, the SDK does not move fd 1 off the wire; ``claimed_stdout`` does what it
would have done: the wire on a private descriptor, fd 1 on stderr while serving, so that a library's or a
child process's stray output never lands between two messages.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Generator
from contextlib import contextmanager
from typing import Final

import anyio
from anyio.abc import AsyncResource
from mcp.shared.message import SessionMessage

# Backlog bytes above which senders wait for the reader; also the most written at a time.
HIGH_WATER: Final = 64 * 1024


class WireOut(AsyncResource):
    """The write stream the SDK's server writes every message to (``mcp.shared._stream_protocols.
    WriteStream``), on the wire ``fd``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pollable = not stat.S_ISREG(os.fstat(fd).st_mode)
        self._backlog = bytearray()  # bytes not written yet, whole lines but for the first
        self._work = anyio.Event()  # set when the backlog or the closing has news for the writer
        self._room = anyio.Event()  # set when the backlog is down to HIGH_WATER or the wire is gone
        self._closed = False
        self._broken: OSError | None = None

    async def send(self, item: SessionMessage, /) -> None:
        """Write ``item`` as one line, or queue it whole behind what is queued; wait while the backlog
        is over :data:`HIGH_WATER`."""
        self._check_open()
        line = item.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        if not self._backlog and self._pollable:
            line = line[self._write_now(line) :]
            if not line:
                return
        self._backlog += line
        self._work.set()
        while len(self._backlog) > HIGH_WATER:
            if self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()
            if self._broken is not None:  # closing meanwhile is no matter: the line is queued
                raise anyio.BrokenResourceError from self._broken

    async def run(self) -> None:
        """Write the backlog as the wire takes it; return once closed with nothing left to write."""
        while True:
            while self._backlog and self._broken is None:
                await self._write_some()
            if self._closed or self._broken is not None:
                return
            await self._work.wait()
            self._work = anyio.Event()

    async def aclose(self) -> None:
        """No more lines; what is queued is still written (``run`` returns when it is)."""
        self._closed = True
        self._work.set()

    def _check_open(self) -> None:
        if self._broken is not None:
            raise anyio.BrokenResourceError from self._broken
        if self._closed:
            raise anyio.ClosedResourceError

    def _write_now(self, line: bytes) -> int:
        """What of ``line`` the wire takes now, without waiting."""
        try:
            return os.write(self._fd, line)
        except BlockingIOError:
            return 0
        except OSError as exc:  # the reader is gone (EPIPE) or the descriptor is unusable
            self._lost(exc)
            raise anyio.BrokenResourceError from exc

    async def _write_some(self) -> None:
        chunk = bytes(self._backlog[:HIGH_WATER])  # a copy: senders may add to the backlog meanwhile
        try:
            if self._pollable:
                await anyio.wait_writable(self._fd)
                written = self._write_now(chunk)
            else:
                written = await anyio.to_thread.run_sync(os.write, self._fd, chunk)
        except anyio.BrokenResourceError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self._backlog[:written]
        if len(self._backlog) <= HIGH_WATER:
            self._room.set()

    def _lost(self, exc: OSError) -> None:
        """The wire is gone: nothing more can be written, and no sender waits for room."""
        self._broken = exc
        self._backlog.clear()
        self._room.set()


@contextmanager
def claimed_stdout() -> Generator[int, None, None]:
    """The wire (fd 1) on a private non-blocking descriptor, and fd 1 on stderr (or the null device) while
    serving, where the SDK points it for the stdout it opens itself; both as they were afterwards."""
    private = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    was_blocking = os.get_blocking(private)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr: stray output goes nowhere, as the SDK sends it
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    os.set_blocking(private, False)  # the pipe's, so the wire's: fd 1 no longer shares it
    try:
        yield private
    finally:
        os.set_blocking(private, was_blocking)
        os.dup2(private, 1)
        os.close(private)
