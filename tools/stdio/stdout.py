"""The server's stdout, written on the event loop.

The SDK's stdio transport writes each message through ``anyio.wrap_file``: a ``write`` and a ``flush``,
each handed to a worker thread and back, two thread hops for every answer, progress notification and
error. Paging a thousand outputs back is a thousand answers. Here the wire is written where the answer
is made: ``os.write`` on a non-blocking descriptor, waiting for room only when the pipe is full (a client
that stops reading holds up its own answers, never the event loop). A regular file cannot be polled and
is written from a worker thread, as the SDK writes it.

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

import anyio


class LoopStdout:
    """What ``stdio_server`` uses of an ``anyio.AsyncFile[str]`` (``write``, ``flush``), on ``fd``.

    One writer at a time: the SDK's single writer task is the only caller.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pollable = not stat.S_ISREG(os.fstat(fd).st_mode)

    async def write(self, text: str) -> int:
        """Write all of ``text``, waiting (without blocking the loop) while the reader is behind."""
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[await self._write_some(data) :]
        return len(text)

    async def flush(self) -> None:
        """Nothing to do: nothing is buffered here."""

    async def _write_some(self, data: memoryview) -> int:
        if not self._pollable:
            return await anyio.to_thread.run_sync(os.write, self._fd, data)
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            await anyio.wait_writable(self._fd)
            return 0


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
