"""The installed ``fanout-mcp serve`` as a remote client sees it: a real process on 127.0.0.1 (a free
port), its URL read from the line it announces on stderr, and the Python SDK's client over HTTP with a
bearer token."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.fake_api import FakeApi
from tests.tools.served import SCRIPT, env_for, running

_ANNOUNCED = re.compile(rb"serving MCP at (http://\S+/mcp)")


@dataclass
class Serving:
    """One running ``serve``: its URL, its process, and all it wrote on stderr so far."""

    url: str
    process: Process
    stderr: bytearray = field(default_factory=bytearray)

    @property
    def base(self) -> str:
        return self.url.removesuffix("/mcp")

    @asynccontextmanager
    async def client(self, token: str | None, mode: str = "auto") -> AsyncGenerator[Client]:
        """The SDK's client, connected with ``token`` as its bearer token (its HTTP client is ours to
        close: the SDK closes only one it made)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        async with create_mcp_http_client(headers=headers) as http:
            transport = streamable_http_client(self.url, http_client=http)
            async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
                yield client

    async def stop(self) -> int:
        """SIGTERM, and its exit status once it has shut down (bound it with ``fail_after``)."""
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


def serve_env(fake: FakeApi, home: Path) -> dict[str, str]:
    return env_for(home, ANTHROPIC_BASE_URL=fake.base_url, ANTHROPIC_API_KEY="test-key")


@asynccontextmanager
async def serving(args: list[str], env: dict[str, str]) -> AsyncGenerator[Serving]:
    """``fanout-mcp serve --port 0 ARGS``, once it has announced its URL; killed at the end if running."""
    argv = [str(SCRIPT), "serve", "--port", "0", *args]
    async with running(argv, env) as process, anyio.create_task_group() as group:
        assert process.stderr is not None
        seen = bytearray()
        with anyio.fail_after(30):
            while (match := _ANNOUNCED.search(seen)) is None:
                seen += await process.stderr.receive()
        served = Serving(match.group(1).decode(), process, seen)

        async def gather() -> None:
            assert process.stderr is not None
            async for chunk in process.stderr:
                served.stderr += chunk

        group.start_soon(gather)
        yield served
        group.cancel_scope.cancel()


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    """A tool's structured result; its error result as it is."""
    result = await client.call_tool(tool, arguments)
    return result.structured_content
