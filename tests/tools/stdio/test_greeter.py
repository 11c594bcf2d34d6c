"""The early handshake, against the installed ``fanout-mcp``: it answers before the MCP SDK is imported,
says what the SDK would say, and hands the connection on to the SDK."""

from __future__ import annotations

import json
import logging
import os
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS

from tests.tools.served import SCRIPT, env_for, started
from tools.stdio import greeter
from tools.stdio.greeter import Greeting
from tools.stdio.serve import _AfterGreeting  # pyright: ignore[reportPrivateUsage]

CLIENT = {"name": "t", "version": "1"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": CLIENT,
    "io.modelcontextprotocol/clientCapabilities": {},
}

# A module that stands in for MODULE until the file GATE exists, then imports the real one in its place:
# the process started with it on PYTHONPATH cannot get past importing MODULE before the test says so.
GATED_IMPORT = """
import importlib, os, sys, time
while not os.path.exists({gate!r}):
    time.sleep(0.01)
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules[__name__]
sys.modules[__name__] = importlib.import_module(__name__)
"""


def gate_imports(directory: Path, *modules: str) -> tuple[str, dict[str, Path]]:
    """A PYTHONPATH on which each of ``modules`` waits for its gate file before it imports, and the gates.
    Each stand-in has a directory of its own, which it takes off ``sys.path`` once open."""
    gates: dict[str, Path] = {}
    for module in modules:
        (directory / module).mkdir()
        gates[module] = directory / f"{module}.open"
        stand_in = GATED_IMPORT.format(gate=str(gates[module]))
        (directory / module / f"{module}.py").write_text(textwrap.dedent(stand_in))
    return os.pathsep.join(str(directory / module) for module in modules), gates


def handshake(era: str) -> tuple[str, dict[str, Any]]:
    if era == "legacy":
        return "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT}
    return "server/discover", {"_meta": MODERN_META}


def params_for(era: str, **params: Any) -> dict[str, Any]:
    return params if era == "legacy" else {**params, "_meta": MODERN_META}


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_the_handshake_is_answered_before_the_sdks_load_and_the_sdk_then_serves_the_connection(
    tmp_path: Path, era: str
) -> None:
    shims = tmp_path / "shims"
    shims.mkdir()
    path, gates = gate_imports(shims, "mcp", "anthropic")
    env = env_for(tmp_path, PYTHONPATH=path, ANTHROPIC_API_KEY="test-key")
    async with started([str(SCRIPT), "--root", str(tmp_path)], env) as server:
        with anyio.fail_after(30):
            method, params = handshake(era)
            answer = await server.request(method, params)  # the MCP SDK cannot have been imported yet
            assert answer["serverInfo" if era == "legacy" else "_meta"]
            if era == "legacy":
                await server.notify("notifications/initialized")
            gates["mcp"].touch()
            listed = await server.request("tools/list", params_for(era))  # the Anthropic SDK: not yet
            assert "spawn_parallel" in [tool["name"] for tool in listed["tools"]]
            gates["anthropic"].touch()
            called = await server.request("tools/call", params_for(era, name="list_tasks", arguments={}))
        assert not called.get("isError"), called
        assert called["structuredContent"]["counts"]["queued"] == 0
        await server.close_stdin()
        with anyio.fail_after(30):
            assert await server.exit_status() == 0
            stderr = await server.stderr()
    assert "early handshake said" not in stderr and "Traceback" not in stderr, stderr


@pytest.mark.parametrize(
    "request_params",
    [
        *[
            ("initialize", {"protocolVersion": v, "capabilities": {}, "clientInfo": CLIENT})
            for v in HANDSHAKE_PROTOCOL_VERSIONS
        ],
        ("initialize", {"protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": CLIENT}),
        (
            "initialize",
            {"protocolVersion": "1999-01-01", "capabilities": {"roots": {}}, "clientInfo": CLIENT},
        ),
        ("server/discover", {"_meta": MODERN_META}),
    ],
)
async def test_the_early_answer_is_the_sdks_own(
    tmp_path: Path, request_params: tuple[str, dict[str, Any]]
) -> None:
    method, params = request_params
    env = env_for(tmp_path, ANTHROPIC_API_KEY="test-key")
    async with started([str(SCRIPT), "--root", str(tmp_path)], env) as server:
        with anyio.fail_after(30):
            answer = await server.request(method, params)
            await server.close_stdin()
            assert await server.exit_status() == 0
            stderr = await server.stderr()
    # serve_stdio compares the SDK's answer with the early one and warns if they differ
    assert "early handshake said" not in stderr, stderr
    if method == "initialize":
        asked = params["protocolVersion"]
        assert answer["protocolVersion"] == (
            asked if asked in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
        )


def test_the_greeters_protocol_versions_are_the_sdks() -> None:
    assert greeter.HANDSHAKE_VERSIONS == HANDSHAKE_PROTOCOL_VERSIONS
    assert greeter.HANDSHAKE_VERSIONS[-1] == LATEST_HANDSHAKE_VERSION
    assert greeter.MODERN_VERSIONS == MODERN_PROTOCOL_VERSIONS


@pytest.mark.parametrize(
    "first",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}},
        {"jsonrpc": "2.0", "id": True, "method": "initialize", "params": {}},
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "server/discover",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2027-01-01",
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        },
    ],
)
def test_a_first_request_that_is_not_a_well_formed_handshake_is_left_to_the_sdk(
    first: dict[str, Any],
) -> None:
    assert greeter.Greeter("1")._answer(json.dumps(first).encode() + b"\n") is None  # pyright: ignore[reportPrivateUsage]


class Written:
    def __init__(self) -> None:
        self.sent: list[SessionMessage] = []

    async def send(self, item: SessionMessage, /) -> None:
        self.sent.append(item)

    async def aclose(self) -> None:
        pass


async def test_the_sdks_answer_to_the_greeted_request_is_dropped_and_a_difference_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    greeting = Greeting(7, {"protocolVersion": "2025-11-25", "stale": True})
    written = Written()
    writer = _AfterGreeting(written, greeting)  # type: ignore[arg-type]
    sdk_answer: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "result": {"protocolVersion": "2025-11-25"}}
    later: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "result": {}}  # the same id again: passed on
    with caplog.at_level(logging.WARNING, logger="fanout_mcp.tools.stdio.serve"):
        for message in (sdk_answer, later):
            await writer.send(SessionMessage(jsonrpc_message_adapter.validate_python(message)))
    assert [
        json.loads(m.message.model_dump_json(by_alias=True, exclude_unset=True)) for m in written.sent
    ] == [later]
    assert "the early handshake said" in caplog.text
