"""The server's stdout: every message one whole line, in order, written at once where the pipe has room,
never holding the loop up while the client is slow to read and never cut by a cancelled sender; fd 1
kept off the wire while serving."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

from tools.stdio.stdout import HIGH_WATER, WireOut

# More than a pipe holds (64 KiB on Linux), with characters of one to four bytes in UTF-8.
TEXT = "".join(f"line {i}: é€😀 " for i in range(40_000))


def message(n: int, text: str = "") -> SessionMessage:
    notice = types.JSONRPCNotification(
        jsonrpc="2.0", method="notifications/message", params={"n": n, "t": text}
    )
    return SessionMessage(notice)


def numbers(received: bytes | bytearray) -> list[int]:
    """The ``n`` of every line, each of which must be one whole message."""
    return [json.loads(line)["params"]["n"] for line in received.decode("utf-8").splitlines()]


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("AnyIO worker thread")}


class Reader:
    """The client's end of the pipe, read in a thread once ``start`` is called, until the writer closes."""

    def __init__(self, fd: int) -> None:
        self.received = bytearray()
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(fd,))
        self._thread.start()

    def start(self) -> None:
        self._go.set()

    def join(self) -> None:
        self._go.set()
        self._thread.join(60)

    def _read(self, fd: int) -> None:
        self._go.wait(60)
        with os.fdopen(fd, "rb") as pipe:
            while chunk := pipe.read(65536):
                self.received.extend(chunk)


async def serving(write_end: int, body: Callable[[WireOut], Awaitable[None]]) -> None:
    """Run ``body`` with the writer task running, then close the wire and wait for all to be written."""
    wire = WireOut(write_end)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wire.run)
            await body(wire)
            await wire.aclose()


def pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # as claimed_stdout leaves the wire
    return read_end, write_end


async def read_back(body: Callable[[WireOut, Reader], Awaitable[None]]) -> bytearray:
    """Run ``body`` with the wire on a pipe (the client reading once ``body`` starts its ``Reader``) and
    the writer task running; everything the client read."""
    read_end, write_end = pipe()
    reader = Reader(read_end)
    try:
        await serving(write_end, lambda wire: body(wire, reader))
    finally:
        os.close(write_end)
        reader.join()
    return reader.received


async def test_a_line_larger_than_the_pipe_waits_for_the_reader_while_the_loop_runs_on() -> None:
    before = _workers()

    async def body(wire: WireOut, reader: Reader) -> None:
        async def mark() -> None:
            reader.start()  # the client reads only once another task has run while the send waits

        async with anyio.create_task_group() as tg:
            tg.start_soon(wire.send, message(1, TEXT))
            tg.start_soon(mark)

    received = await read_back(body)
    new_workers = _workers() - before
    assert json.loads(received.decode("utf-8"))["params"] == {"n": 1, "t": TEXT}
    assert not new_workers, "a write to a pipe went through a worker thread"


async def test_a_cancelled_sender_s_line_is_still_finished_whole_before_the_next() -> None:
    async def body(wire: WireOut, reader: Reader) -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()  # cancelled from the start: the send waits for room, cancelled there
            await wire.send(message(1, TEXT))  # the pipe takes a part; the rest is over HIGH_WATER
        assert scope.cancelled_caught
        reader.start()
        await wire.send(message(2))

    assert numbers(await read_back(body)) == [1, 2]


async def test_lines_from_many_senders_arrive_whole() -> None:
    async def body(wire: WireOut, reader: Reader) -> None:
        async with anyio.create_task_group() as tg:
            for n in range(200):  # a megabyte: many pipes full
                tg.start_soon(wire.send, message(n, "x" * 5_000))
            reader.start()

    assert sorted(numbers(await read_back(body))) == list(range(200))


async def test_a_sender_ahead_of_the_reader_waits_once_the_backlog_passes_high_water() -> None:
    read_end, write_end = pipe()
    pipe_size = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)  # what read_back's pipe holds too
    os.close(read_end)
    os.close(write_end)
    line = len(message(0, "x" * 5_000).message.model_dump_json(by_alias=True, exclude_unset=True)) + 1
    sent = 0
    held: list[int] = []

    async def body(wire: WireOut, reader: Reader) -> None:
        async def sender() -> None:
            nonlocal sent
            for n in range(200):
                await wire.send(message(n, "x" * 5_000))
                sent += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            await anyio.wait_all_tasks_blocked()  # the reader reads nothing yet
            held.append(len(wire._backlog))  # pyright: ignore[reportPrivateUsage]
            held.append(sent)
            reader.start()

    received = await read_back(body)
    backlog, sent_while_held = held
    assert HIGH_WATER < backlog <= HIGH_WATER + line  # the line that passed it, then no more
    # what the pipe holds, then HIGH_WATER, then the line that passed it: not all 200
    assert sent_while_held <= (pipe_size + HIGH_WATER) // line + 1
    assert numbers(received) == list(range(200))


async def test_once_the_reader_is_gone_a_send_says_so_and_the_writer_ends() -> None:
    read_end, write_end = pipe()
    os.close(read_end)

    async def body(wire: WireOut) -> None:
        with pytest.raises(anyio.BrokenResourceError):
            await wire.send(message(1))
        with pytest.raises(anyio.BrokenResourceError):
            await wire.send(message(2))

    try:
        await serving(write_end, body)
    finally:
        os.close(write_end)


async def test_after_closing_a_send_is_refused_and_what_was_queued_is_written() -> None:
    read_end, write_end = pipe()
    reader = Reader(read_end)
    wire = WireOut(write_end)
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wire.send, message(1, TEXT))  # more than the pipe holds: queued in part
                await anyio.wait_all_tasks_blocked()
                await wire.aclose()
                with pytest.raises(anyio.ClosedResourceError):
                    await wire.send(message(2))
                tg.start_soon(wire.run)
                reader.start()
    finally:
        os.close(write_end)
        reader.join()
    assert numbers(reader.received) == [1]


async def test_a_regular_file_is_written_whole_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "stdout.jsonl"
    with path.open("wb") as file:

        async def body(wire: WireOut) -> None:
            await wire.send(message(1, TEXT))
            await wire.send(message(2))

        await serving(file.fileno(), body)
    assert numbers(path.read_bytes()) == [1, 2]


def test_while_claimed_fd_1_writes_to_stderr_and_the_wire_gets_only_what_is_written_to_it() -> None:
    script = """
import os
from fanout_mcp.tools.stdio.stdout import claimed_stdout

with claimed_stdout() as wire:
    os.write(1, b"stray\\n")  # a library or a child process writing to stdout
    os.write(wire, b"wire " + str(os.get_blocking(wire)).encode() + b"\\n")
os.write(1, b"after " + str(os.get_blocking(1)).encode() + b"\\n")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True, stdin=subprocess.DEVNULL
    )
    assert done.stdout == b"wire False\nafter True\n"
    assert done.stderr == b"stray\n"


def test_without_stderr_stray_output_goes_nowhere_and_the_wire_still_works() -> None:
    script = """
import os
from fanout_mcp.tools.stdio.stdout import claimed_stdout

os.close(2)  # started with no stderr
with claimed_stdout() as wire:
    os.write(1, b"stray\\n")
    os.write(wire, b"wire\\n")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True, stdin=subprocess.DEVNULL
    )
    assert done.stdout == b"wire\n"
