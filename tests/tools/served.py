"""The installed ``fanout-mcp`` as a client sees it over stdio, with the process at hand: raw JSON-RPC on its
stdin and stdout (stdin stays open until the test is done), its pid to signal, its stderr to read."""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

SCRIPT = Path(sys.executable).with_name("fanout-mcp")
_LAUNCH = "import site, sys; site.addsitedir(sys.argv.pop(1)); from fanout_mcp.tools.cli.main import main; sys.exit(main())"


def command_line(*args: str, python: str = sys.executable) -> list[str]:
    """How to run the installed server with ``args``: its script, or with another ``python`` (one that
    another user can run) the same ``main`` over this environment's packages."""
    if python == sys.executable:
        return [str(SCRIPT), *args]
    return [python, "-c", _LAUNCH, sysconfig.get_path("purelib"), *args]


def as_nobody(argv: list[str]) -> list[str]:
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


class Served:
    """One running server: requests in, answers out, its stderr gathered as it comes."""

    def __init__(self, process: Process, group: TaskGroup) -> None:
        self.process = process
        assert process.stdout is not None and process.stderr is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self._stderr = bytearray()
        self._stderr_grew = anyio.Event()
        self._stderr_done = anyio.Event()
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []  #: what came meanwhile, in order
        group.start_soon(self._gather_stderr)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        message = await self.exchange(method, params)
        assert "error" not in message, message
        return message["result"]

    async def exchange(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The whole answer to a request, its result or its error; notifications meanwhile are kept."""
        self._next_id += 1
        await self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        while True:
            message = json.loads(await self._stdout.receive_until(b"\n", 16 * 1024 * 1024))
            if message.get("id") == self._next_id:
                return message
            if "id" not in message:
                self.notifications.append(message)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        assert not result.get("isError"), result
        return result["structuredContent"]

    async def exit_status(self) -> int:
        """Its exit status once it has exited (bound it with ``fail_after``)."""
        return await self.process.wait()

    async def stderr(self) -> str:
        """All it wrote on stderr, once it has exited."""
        await self._stderr_done.wait()
        return self._stderr.decode(errors="replace")

    async def wait_stderr(self, pattern: re.Pattern[bytes]) -> re.Match[bytes]:
        """The first match of ``pattern`` in its stderr, once written (bound it with ``fail_after``)."""
        while (found := pattern.search(self._stderr)) is None:
            await self._stderr_grew.wait()
            self._stderr_grew = anyio.Event()
        return found

    async def close_stdin(self) -> None:
        """The end of stdin: the server's signal to stop."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()

    async def notify(self, method: str) -> None:
        await self._send({"jsonrpc": "2.0", "method": method})

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def _gather_stderr(self) -> None:
        assert self.process.stderr is not None
        try:
            async for chunk in self.process.stderr:
                self._stderr += chunk
                self._stderr_grew.set()
        finally:
            self._stderr_done.set()


@asynccontextmanager
async def running(argv: list[str], env: dict[str, str], **options: Any) -> AsyncGenerator[Process]:
    """The process ``argv`` starts (``options`` as for ``anyio.open_process``); killed and reaped at the
    end if it is still running, so that a failed test never waits for it."""
    process = await anyio.open_process(argv, env=env, **options)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()


@asynccontextmanager
async def started(argv: list[str], env: dict[str, str]) -> AsyncGenerator[Served]:
    """The server ``argv`` runs, as it starts (nothing sent yet); killed and reaped at the end if it is
    still running."""
    async with running(argv, env) as process, anyio.create_task_group() as group:
        yield Served(process, group)
        group.cancel_scope.cancel()


@asynccontextmanager
async def served(argv: list[str], env: dict[str, str]) -> AsyncGenerator[Served]:
    """The server ``argv`` runs, initialized (protocol 2025-11-25); killed and reaped at the end if it is
    still running."""
    async with started(argv, env) as server:
        await server.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        )
        await server.notify("notifications/initialized")
        yield server


async def read_until(stream: ByteReceiveStream, text: str, seen: bytearray) -> None:
    """Read ``stream`` into ``seen`` until ``text`` is in it (bound it with ``fail_after``)."""
    while text.encode() not in seen:
        seen += await stream.receive()


def env_for(home: Path, **more: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": os.environ.get("PATH", ""), **more}
