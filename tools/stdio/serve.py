"""Serve the MCP server over stdio, as ``MCPServer.run_stdio_async`` does, with a transport of its own:
every line of stdin parsed and checked once (``frames``), a malformed one answered with its JSON-RPC
error and the server serving on; every message written at once where it is made (``stdout``).

The SDK's ``stdio_server`` runs a reader task and a writer task, and hands each message between them and
the server through memory streams: two task switches a request (with a thread hop each way besides), and
every line parsed twice. Here the server's own reads pull lines from stdin, and its writes go to the
wire. What the early handshake (``greeter``) read of stdin comes first, and the SDK's answer to the
request it answered is dropped (after a check that it says the same).

A line may be at most :data:`LINE_LIMIT` bytes, the SDK's own bound for an HTTP request body: a longer
one is answered ``-32600`` as soon as the limit is passed, and the rest of it is read and dropped in
small pieces, so no line is ever held whole beyond the limit.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, Final, Protocol

import anyio
import mcp_types as types
from anyio.abc import AsyncResource
from mcp.server.mcpserver import MCPServer
from mcp.shared._stream_protocols import WriteStream  # the type lowlevel.run takes
from mcp.shared.message import SessionMessage

from .frames import Accepted, Refused, check_line, refuse_long_line
from .greeter import Greeting, Handover
from .stdout import WireOut, claimed_stdout

logger = logging.getLogger(__name__)

LINE_LIMIT: Final = 4 * 1024 * 1024
# What is read at a time; also the most of a line past the limit searched for its id, and the longest
# line checked on the event loop (a longer one is checked in a worker thread).
_CHUNK: Final = 64 * 1024


class _Writer(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


async def serve_stdio(server: MCPServer[Any], greeted: Handover | None = None) -> None:
    """Serve ``server`` over this process's stdin and stdout until stdin closes; ``greeted`` is what the
    early handshake read and answered before."""
    # MCPServer has no public handle on its low-level server in mcp 2.3; the SDK's Client reads it so too.
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    with _claimed_stdin() as wire_in, claimed_stdout() as wire_out:
        wire = WireOut(wire_out)
        write_stream: WriteStream[SessionMessage] = wire
        if greeted is not None and greeted.greeting is not None:
            write_stream = _AfterGreeting(wire, greeted.greeting)
        messages = _CheckedLines(wire_in, write_stream, greeted.read if greeted else b"")
        async with anyio.create_task_group() as tg:
            tg.start_soon(wire.run)  # returns once the wire is closed and all is written
            try:
                await lowlevel.run(messages, write_stream, lowlevel.create_initialization_options())
            finally:
                await wire.aclose()  # the server closes it as it ends; this makes sure of it


class _AfterGreeting(AsyncResource):
    """The SDK's writer, less its answer to the request the greeter answered already."""

    def __init__(self, writer: WriteStream[SessionMessage], greeting: Greeting) -> None:
        self._writer = writer
        self._greeting: Greeting | None = greeting

    async def send(self, item: SessionMessage, /) -> None:
        greeting = self._greeting
        if greeting is not None and getattr(item.message, "id", None) == greeting.request_id:
            self._greeting = None
            said = json.loads(item.message.model_dump_json(by_alias=True, exclude_unset=True))
            if said != {"jsonrpc": "2.0", "id": greeting.request_id, "result": greeting.answer}:
                logger.warning(
                    "the early handshake said %s, the SDK %s: update tools/stdio/greeter.py",
                    greeting.answer,
                    said.get("result", said),
                )
            return
        await self._writer.send(item)

    async def aclose(self) -> None:
        await self._writer.aclose()


@contextmanager
def _claimed_stdin() -> Generator[int, None, None]:
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
        yield private
    finally:
        # Left open: a worker thread abandoned at shutdown (stdin not pollable) may still read it.
        os.dup2(private, 0)


class _CheckedLines(AsyncResource):
    """The read stream the SDK's server reads (``mcp.shared._stream_protocols.ReadStream``): each line of
    stdin it can take, as a message; every other line is answered (or dropped) here.

    stdin is read on the event loop once it is readable, never by a thread blocked on it, so cancelling
    the server never waits for a client that sends nothing more.
    """

    def __init__(self, fd: int, writer: _Writer, read: bytes = b"") -> None:
        self._fd = fd
        self._writer = writer  # where a refused line's error goes, in line with every other answer
        self._pollable = True  # a regular file (or /dev/null) cannot be polled; reading it never blocks
        self._buffer = bytearray(read)  # what was read of stdin before
        self._searched = 0  # bytes of the buffer known to hold no newline
        self._skipping = False  # inside a line past the limit, dropping the rest of it
        self._end = False
        self._closed = False

    async def receive(self) -> SessionMessage:
        if self._closed:
            raise anyio.ClosedResourceError
        while (line := await self._next_line()) is not None:
            verdict = await self._check(line)
            if isinstance(verdict, Accepted):
                return SessionMessage(verdict.message)
            if verdict is not None:
                await self._answer(verdict)
        raise anyio.EndOfStream

    def __aiter__(self) -> _CheckedLines:
        return self

    async def __anext__(self) -> SessionMessage:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._closed = True  # stdin itself is _claimed_stdin's to give back

    async def _next_line(self) -> bytes | Refused | None:
        """The next whole line, the refusal of a line past the limit, or None at the end of stdin."""
        while True:
            if self._skipping:
                end = self._buffer.find(b"\n")
                if end >= 0:
                    del self._buffer[: end + 1]
                    self._skipping = False
                    continue
                self._buffer.clear()
            else:
                end = self._buffer.find(b"\n", self._searched, LINE_LIMIT + 1)
                if end >= 0:
                    line = bytes(self._buffer[: end + 1])
                    del self._buffer[: end + 1]
                    self._searched = 0
                    return line
                if len(self._buffer) > LINE_LIMIT:
                    self._skipping, self._searched = True, 0  # what is left of the line is dropped next
                    return refuse_long_line(bytes(self._buffer[:_CHUNK]), LINE_LIMIT)
                self._searched = len(self._buffer)
            if self._end:
                last = bytes(self._buffer) or None  # a last line without its newline
                self._buffer.clear()
                return last
            chunk = await self._read()
            self._end = not chunk
            self._buffer += chunk

    async def _read(self) -> bytes:
        while self._pollable:
            try:
                await anyio.wait_readable(self._fd)
            except OSError:
                self._pollable = False
                break
            try:
                return os.read(self._fd, _CHUNK)
            except BlockingIOError:  # stdin and stdout one tty or socket, non-blocking for stdout's sake
                continue
        return await anyio.to_thread.run_sync(os.read, self._fd, _CHUNK, abandon_on_cancel=True)

    async def _check(self, line: bytes | Refused) -> Accepted | Refused | None:
        if isinstance(line, Refused):
            return line
        try:
            if len(line) < _CHUNK:
                return check_line(line)
            # checking a long line is CPU work proportional to its length: off the event loop
            return await anyio.to_thread.run_sync(check_line, line, abandon_on_cancel=True)
        except Exception:  # a bug in the check must not end the connection: the SDK's parser decides
            logger.exception("checking a line of stdin failed; reading it as the SDK does")
            return _parsed_as_the_sdk_does(line)

    async def _answer(self, refused: Refused) -> None:
        if refused.answer is None:
            logger.warning("dropped a line of stdin, unanswered: %s", refused.reason)
            return
        code = refused.answer.error.code
        logger.warning("answered a line of stdin with error %d: %s", code, refused.reason)
        try:
            await self._writer.send(SessionMessage(refused.answer))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("the connection closed before a refused line was answered")


def _parsed_as_the_sdk_does(line: bytes) -> Accepted | None:
    """``line`` as the SDK's own stdio transport reads it; None (dropped, as it drops it) if it cannot."""
    try:
        return Accepted(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError:
        logger.warning("dropped a line of stdin the SDK cannot read either")
        return None
