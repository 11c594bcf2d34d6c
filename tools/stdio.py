"""Serve the MCP server over stdio, as ``MCPServer.run_stdio_async`` does, with every line of stdin
checked before the SDK reads it (``frames``): a malformed one is answered with its JSON-RPC error
through the SDK's own stdout writer, so answers never interleave, and the server keeps serving.

A line may be at most :data:`LINE_LIMIT` bytes, the SDK's own bound for an HTTP request body: a longer
one is answered ``-32600`` as soon as the limit is passed, and the rest of it is read and dropped in
small pieces, so no line is ever held whole beyond the limit.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, BinaryIO, Final, Protocol, cast

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from fanout_mcp.tools.frames import Accepted, Refused, check_line, refuse_long_line

logger = logging.getLogger(__name__)

LINE_LIMIT: Final = 4 * 1024 * 1024
# What is read at a time of a line past the limit (to drop it), and how much of it is searched for an id.
_CHUNK: Final = 64 * 1024


class _Writer(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


class _End:
    """stdin is closed."""


async def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve ``server`` over this process's stdin and stdout until stdin closes."""
    # MCPServer has no public handle on its low-level server in mcp 2.3; the SDK's Client reads it so too.
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    with _claimed_stdin() as wire:
        lines = _CheckedLines(wire)
        # stdio_server only iterates the stdin it is given, line by line.
        async with stdio_server(stdin=cast("anyio.AsyncFile[str]", lines)) as (read_stream, write_stream):
            lines.answer_through(write_stream)
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


@contextmanager
def _claimed_stdin() -> Generator[BinaryIO, None, None]:
    """stdin on a private descriptor, and fd 0 on /dev/null while serving: a child process or a library
    that reads stdin gets end-of-file, never a request (what ``stdio_server`` does for the stdin it opens
    itself, and skips for one it is given)."""
    private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        # closefd=False: a reader thread abandoned at shutdown may still block on it; it must not be reused.
        yield os.fdopen(private, "rb", buffering=_CHUNK, closefd=False)
    finally:
        os.dup2(private, 0)


class _CheckedLines:
    """The lines of stdin the SDK can take, as text; every other line is answered (or dropped) here."""

    def __init__(self, wire: BinaryIO) -> None:
        self._wire = wire
        self._skipping = False  # inside a line past the limit, dropping the rest of it
        self._writer: _Writer | None = None
        self._writer_set = anyio.Event()

    def answer_through(self, writer: _Writer) -> None:
        self._writer = writer
        self._writer_set.set()

    def __aiter__(self) -> _CheckedLines:
        return self

    async def __anext__(self) -> str:
        while True:
            # In a worker thread: the read blocks, and checking a long line is CPU work. Abandoned on
            # cancel, so a shutdown never waits for a client that sends nothing more.
            verdict = await anyio.to_thread.run_sync(self._next_verdict, abandon_on_cancel=True)
            if isinstance(verdict, _End):
                raise StopAsyncIteration
            if isinstance(verdict, Accepted):
                return verdict.text
            if verdict is not None:
                await self._answer(verdict)

    def _next_verdict(self) -> Accepted | Refused | _End | None:
        while self._skipping:
            rest = self._wire.readline(_CHUNK)
            self._skipping = rest != b"" and not rest.endswith(b"\n")
        line = self._wire.readline(LINE_LIMIT + 1)
        if not line:
            return _End()
        if len(line) > LINE_LIMIT and not line.endswith(b"\n"):
            self._skipping = True
            return refuse_long_line(line[:_CHUNK], LINE_LIMIT)
        try:
            return check_line(line)
        except Exception:  # a bug in the check must not end the connection: the SDK decides, as before
            logger.exception("checking a line of stdin failed; passing it to the SDK unchecked")
            return Accepted(line.decode("utf-8", errors="replace"))

    async def _answer(self, refused: Refused) -> None:
        if refused.answer is None:
            logger.warning("dropped a line of stdin, unanswered: %s", refused.reason)
            return
        code = refused.answer.error.code
        logger.warning("answered a line of stdin with error %d: %s", code, refused.reason)
        await self._writer_set.wait()
        assert self._writer is not None
        try:
            await self._writer.send(SessionMessage(refused.answer))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("the connection closed before a refused line was answered")
