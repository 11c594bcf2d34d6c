"""Raw bytes into the installed ``fanout-mcp`` over stdio: every malformed request gets its JSON-RPC
error, and the server keeps serving, in both protocol eras."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.shared.message import SessionMessage

from tests.fake_api import FakeApi
from tests.tools.cli.test_main import SCRIPT, script_env
from tools.stdio import serve
from tools.stdio.serve import LINE_LIMIT

MODERN_META: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class Wire:
    """The server's stdin and stdout, line by line; every read bounded."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def send(self, line: bytes) -> None:
        await self._stdin.send(line + b"\n")

    async def close(self) -> None:
        """End of input: the server ends, as it does when its client goes."""
        await self._stdin.aclose()

    async def receive(self) -> dict[str, Any]:
        with anyio.fail_after(30):
            line = await self._stdout.receive_until(b"\n", 16 * 1024 * 1024)
        return json.loads(line)

    async def request(self, request_id: int, method: str, params: dict[str, Any] | None = None) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(json.dumps(message).encode())
        answer = await self.receive()
        assert answer["id"] == request_id, answer
        return answer["result"]

    async def handshake(self) -> None:
        """The 2025 era: initialize, then the initialized notification."""
        client = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        }
        await self.request(0, "initialize", client)
        await self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def peak_rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


@asynccontextmanager
async def server(fake_api: FakeApi, tmp_path: Path) -> AsyncGenerator[Wire, None]:
    command = [str(SCRIPT), "--root", str(tmp_path)]
    async with await anyio.open_process(command, env=script_env(fake_api)) as process:
        wire = Wire(process)
        try:
            yield wire
        finally:
            await wire.close()
            with anyio.fail_after(30):
                assert await process.wait() == 0


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# Each line, and the (code, id) of the error that must answer it.
MALFORMED: list[tuple[bytes, tuple[int, Any]]] = [
    (b"plain garbage text", (PARSE_ERROR, None)),
    (b'\xff\xfe{"jsonrpc":"2.0","id":1,"method":"tools/list"}', (PARSE_ERROR, None)),
    (b'{"jsonrpc":"2.0","id":NaN,"method":"tools/list"}', (PARSE_ERROR, None)),
    (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"', (PARSE_ERROR, None)),
    (
        b'{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":{"name":"spawn_parallel",'
        b'"arguments":{"tasks":' + deep(200).encode() + b"}}}",
        (INVALID_REQUEST, "deep"),
    ),
    (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_tasks",'
        b'"arguments":{"group_id":"\\ud800"}}}',
        (INVALID_REQUEST, 3),
    ),
    (b'{"jsonrpc":"1.0","id":4,"method":"tools/list"}', (INVALID_REQUEST, 4)),
    (b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}', (INVALID_REQUEST, None)),
    (b'{"jsonrpc":"2.0","id":{"n":5},"method":"tools/list"}', (INVALID_REQUEST, None)),
    (b'{"jsonrpc":"2.0","id":5.5,"method":"tools/list"}', (INVALID_REQUEST, None)),
    (b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', (INVALID_REQUEST, None)),
    (b'[{"jsonrpc":"2.0","id":6,"method":"tools/list"}]', (INVALID_REQUEST, None)),
    (b"[]", (INVALID_REQUEST, None)),
    (b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":[1]}', (INVALID_REQUEST, 7)),
    (b'{"jsonrpc":"2.0","id":"eight"}', (INVALID_REQUEST, "eight")),
    (b'{"jsonrpc":"2.0","id":9,"method":9}', (INVALID_REQUEST, 9)),
    (b"42", (INVALID_REQUEST, None)),
]


async def test_every_malformed_request_is_answered_with_its_error_and_id_and_the_server_keeps_serving(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    async with server(fake_api, tmp_path) as wire:
        await wire.handshake()
        answers: list[tuple[int, Any]] = []
        for line, _ in MALFORMED:
            await wire.send(line)
            answer = await wire.receive()
            answers.append((answer["error"]["code"], answer["id"]))
        assert answers == [expected for _, expected in MALFORMED]
        listed = await wire.request(99, "tools/list")
        assert "spawn_parallel" in {tool["name"] for tool in listed["tools"]}


async def test_a_malformed_notification_gets_no_answer_and_the_next_request_does(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    async with server(fake_api, tmp_path) as wire:
        await wire.handshake()
        for notification in [
            b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}',
            b'{"jsonrpc":"1.0","method":"notifications/initialized"}',
            b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"x":' + deep(300).encode() + b"}}",
        ]:
            await wire.send(notification)
        # Answers go out in order: the first line back is the ping's, so none of the above was answered.
        assert await wire.request(10, "ping") == {}


async def test_a_line_past_the_limit_is_answered_and_never_held_whole(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    async with server(fake_api, tmp_path) as wire:
        await wire.handshake()
        await wire.request(1, "tools/list")
        before = wire.peak_rss_kib()
        huge = "x" * (8 * LINE_LIMIT)
        line = {"jsonrpc": "2.0", "id": "big", "method": "tools/call",
                "params": {"name": "list_tasks", "arguments": {"group_id": huge}}}  # fmt: skip
        # The request after it comes in the same write: the end of the long line is dropped, not the next.
        await wire.send(json.dumps(line).encode() + b'\n{"jsonrpc":"2.0","id":2,"method":"ping"}')
        answer = await wire.receive()
        assert (answer["id"], answer["error"]["code"]) == ("big", INVALID_REQUEST)
        assert str(LINE_LIMIT) in answer["error"]["message"]
        assert await wire.receive() == {"jsonrpc": "2.0", "id": 2, "result": {}}
        # Held whole, the line grew the peak by 128 MiB (text, parsed value, the error echoing it); read
        # up to the limit, by about two limits (the read buffer and the line cut from it).
        growth_mib = (wire.peak_rss_kib() - before) / 1024
        assert growth_mib < 4 * LINE_LIMIT / 2**20, f"the peak grew by {growth_mib:.0f} MiB"


async def test_lines_from_a_file_on_stdin_are_answered_too(fake_api: FakeApi, tmp_path: Path) -> None:
    # A regular file cannot be polled for input like a pipe: it is read another way.
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(b'garbage\n[]\n{"jsonrpc":"2.0","id":"no newline","method":"x","params":1}')
    with lines.open("rb") as stdin:
        command = [str(SCRIPT), "--root", str(tmp_path)]
        done = await anyio.run_process(command, stdin=stdin, env=script_env(fake_api), check=False)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(a["error"]["code"], a["id"]) for a in answers] == [
        (PARSE_ERROR, None),
        (INVALID_REQUEST, None),
        (INVALID_REQUEST, "no newline"),
    ]


async def test_serving_ends_when_cancelled_though_stdin_stays_open(fake_api: FakeApi, tmp_path: Path) -> None:
    # No thread is left blocked reading stdin: the process exits while the test still holds stdin open.
    script = f"""
import anyio
from fanout_mcp.server import Settings
from fanout_mcp.tools.app import create_server
from fanout_mcp.tools.stdio.serve import serve_stdio

async def main():
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_stdio, create_server(Settings(roots=({str(tmp_path)!r},))))
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    print("cancelled", flush=True)

anyio.run(main)
"""
    command = [sys.executable, "-c", script]
    async with await anyio.open_process(command, env=script_env(fake_api)) as process:
        assert process.stdout is not None
        with anyio.fail_after(60):
            assert await process.wait() == 0
        assert (await process.stdout.receive()).strip() == b"cancelled"


async def test_in_the_2026_era_garbage_is_answered_and_enveloped_requests_are_still_served(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    async with server(fake_api, tmp_path) as wire:
        listed = await wire.request(1, "tools/list", {"_meta": MODERN_META})
        assert listed["resultType"] == "complete"
        await wire.send(b"{not json")
        assert (await wire.receive())["error"]["code"] == PARSE_ERROR
        await wire.send(b'{"jsonrpc":"2.0","id":2,"method":"tools/list","params":"x"}')
        answer = await wire.receive()
        assert (answer["id"], answer["error"]["code"]) == (2, INVALID_REQUEST)
        called = await wire.request(
            3, "tools/call", {"name": "list_tasks", "arguments": {}, "_meta": MODERN_META}
        )
        assert called["isError"] is False


def test_a_client_on_one_socket_for_stdin_and_stdout_is_served(fake_api: FakeApi, tmp_path: Path) -> None:
    # One file for both (a socket, a terminal): the server's stdout is non-blocking, so its stdin is too.
    ours, theirs = socket.socketpair()
    command = [str(SCRIPT), "--root", str(tmp_path)]
    with (
        ours,
        subprocess.Popen(
            command, stdin=theirs.fileno(), stdout=theirs.fileno(), env=script_env(fake_api)
        ) as process,
    ):
        theirs.close()
        ours.settimeout(60)
        lines = ours.makefile("rwb")
        requests: list[dict[str, Any]] = [
            {"id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                          "clientInfo": {"name": "raw", "version": "1"}}},
            {"method": "notifications/initialized"},
            {"id": 2, "method": "tools/call", "params": {"name": "list_tasks", "arguments": {}}},
        ]  # fmt: skip
        for message in requests:
            lines.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
            lines.flush()
            if "id" in message:
                assert json.loads(lines.readline())["id"] == message["id"]
        ours.shutdown(socket.SHUT_WR)  # end of input: the server ends
        assert process.wait(60) == 0


class Answers:
    """A write stream that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[SessionMessage] = []

    async def send(self, item: SessionMessage, /) -> None:
        self.sent.append(item)


async def test_lines_are_read_as_messages_and_a_bug_in_the_check_leaves_the_line_to_the_sdks_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\nnot json\n')
    os.write(
        write_end, b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n{"jsonrpc":"2.0","id":3,"method":"ping"}\n'
    )
    os.close(write_end)
    answers = Answers()
    lines = serve._CheckedLines(read_end, answers)  # pyright: ignore[reportPrivateUsage]
    try:
        with anyio.fail_after(30):
            first = await lines.receive()
            second = await lines.receive()  # the garbage between them is answered, not returned

            def broken(line: bytes) -> None:
                raise RuntimeError("a bug")

            monkeypatch.setattr(serve, "check_line", broken)
            third = await lines.receive()
            with pytest.raises(anyio.EndOfStream):
                await lines.receive()
    finally:
        os.close(read_end)
    requests = [m.message for m in (first, second, third)]
    assert [r.id for r in requests if isinstance(r, types.JSONRPCRequest)] == [1, 2, 3]
    [answer] = [a.message for a in answers.sent]
    assert isinstance(answer, types.JSONRPCError) and answer.error.code == PARSE_ERROR
