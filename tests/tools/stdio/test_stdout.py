"""The server's stdout: written on the event loop, whole and in order, and never holding the loop up
while the client is slow to read; fd 1 kept off the wire while serving."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio

from tools.stdio.stdout import LoopStdout

# More than a pipe holds (64 KiB on Linux), with characters of one to four bytes in UTF-8.
TEXT = "".join(f"line {i}: é€😀\n" for i in range(40_000))


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("AnyIO worker thread")}


async def test_a_write_larger_than_the_pipe_waits_for_the_reader_while_the_loop_runs_on() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # as claimed_stdout leaves the wire
    loop_ran = threading.Event()
    ran_before_reading: list[bool] = []
    received = bytearray()

    def reader() -> None:
        # Reads nothing until another task has run while the write waits (or 30 s have passed): a write
        # that blocked the event loop would let no task run until this reader gave up waiting.
        ran_before_reading.append(loop_ran.wait(30))
        with os.fdopen(read_end, "rb") as pipe:
            while chunk := pipe.read(65536):
                received.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    before = _workers()
    try:
        out = LoopStdout(write_end)

        async def mark() -> None:
            loop_ran.set()

        async def write() -> None:
            assert await out.write(TEXT) == len(TEXT)
            await out.flush()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                tg.start_soon(mark)
        new_workers = _workers() - before
    finally:
        os.close(write_end)
        thread.join(60)
    assert ran_before_reading == [True]
    assert received.decode("utf-8") == TEXT
    assert not new_workers, "a write to a pipe went through a worker thread"


async def test_a_regular_file_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "stdout.jsonl"
    with path.open("wb") as file:
        out = LoopStdout(file.fileno())
        with anyio.fail_after(60):
            await out.write(TEXT)
            await out.write("last\n")
    assert path.read_text(encoding="utf-8") == TEXT + "last\n"


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
