"""Tasks against the installed ``fanout-mcp`` over stdio, in raw JSON-RPC: Claude Code's extension flow
(2026-07-28) replayed as it speaks it, VS Code's core tasks (2025-11-25), and a restart in the middle."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio

from tests.fake_api import FakeApi
from tests.tools.cli.test_main import script_env
from tests.tools.served import SCRIPT, Served, served, started

EXTENSION = "io.modelcontextprotocol/tasks"
# What Claude Code (2.1.319) puts in the _meta of every request: the extension among its capabilities.
CLAUDE_CODE: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "claude-code", "version": "2.1.319"},
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "extensions": {EXTENSION: {}}},
}
HELD = [{"task": "[[hold]]", "label": "a"}, {"task": "[[hold]]", "label": "b"}]


def as_claude_code(**params: Any) -> dict[str, Any]:
    return {**params, "_meta": CLAUDE_CODE}


async def poll(server: Served, task_id: str) -> dict[str, Any]:
    """tasks/get at once, then every pollIntervalMs, until the task has ended (bound by the caller)."""
    while True:
        task = await server.request("tasks/get", as_claude_code(taskId=task_id))
        if task["status"] != "working":
            return task
        await anyio.sleep(task["pollIntervalMs"] / 1000)


def argv(tmp_path: Path, store: Path | None = None) -> list[str]:
    return [str(SCRIPT), "--root", str(tmp_path), "--store", str(store or tmp_path / "tasks.db")]


async def test_claude_codes_extension_flow_replayed_against_the_installed_server(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    async with started(argv(tmp_path), script_env(fake_api)) as server:
        with anyio.fail_after(60):
            discovered = await server.request("server/discover", as_claude_code())
            assert discovered["capabilities"]["extensions"] == {EXTENSION: {}}
            call = as_claude_code(name="run_parallel", arguments={"tasks": HELD, "mode": "merge"})
            created = await server.request("tools/call", call)
            assert created["resultType"] == "task" and created["status"] == "working"
            assert {"taskId", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"} <= set(created)
            first = await server.request("tasks/get", as_claude_code(taskId=created["taskId"]))  # at once
            assert first["status"] == "working" and "2 running" in first["statusMessage"]
            fake_api.release()
            ended = await poll(server, created["taskId"])
            assert ended["status"] == "completed" and not ended["result"].get("isError")
            outputs = ended["result"]["structuredContent"]["outputs"]["tasks"]
            assert [t["state"] for t in outputs] == ["completed", "completed"]
            assert ended["result"]["structuredContent"]["synthesis"]["mode"] == "merge"
            # An interrupt: tasks/cancel, and the fan-out is cancelled.
            fake_api.rearm()
            second = await server.request(
                "tools/call", as_claude_code(name="run_parallel", arguments={"tasks": HELD})
            )
            await server.request("tasks/cancel", as_claude_code(taskId=second["taskId"]))
            assert (await poll(server, second["taskId"]))["status"] == "cancelled"
            listed = await server.request(
                "tools/call", as_claude_code(name="list_tasks", arguments={"group_id": second["taskId"]})
            )
            assert listed["structuredContent"]["counts"]["cancelled"] == 2
            # A call that does not declare the extension gets today's result, and no tasks/*.
            plain: dict[str, Any] = {**CLAUDE_CODE, "io.modelcontextprotocol/clientCapabilities": {}}
            result = await server.request(
                "tools/call", {"name": "list_tasks", "arguments": {}, "_meta": plain}
            )
            assert result["resultType"] == "complete"
            refused = await server.exchange("tasks/get", {"taskId": second["taskId"], "_meta": plain})
            assert refused["error"]["code"] == -32021
            unknown = await server.exchange("tasks/get", as_claude_code(taskId="g-unknown"))
            assert unknown["error"]["code"] == -32602


async def test_vs_codes_core_tasks_against_the_installed_server(fake_api: FakeApi, tmp_path: Path) -> None:
    async with served(argv(tmp_path), script_env(fake_api)) as server:
        with anyio.fail_after(60):
            tools = {t["name"]: t for t in (await server.request("tools/list", {}))["tools"]}
            assert tools["run_parallel"]["execution"] == {"taskSupport": "optional"}
            assert "execution" not in tools["list_tasks"]
            call = {
                "name": "run_parallel",
                "arguments": {"tasks": HELD, "mode": "merge"},
                "task": {"ttl": 60000},
            }
            created = (await server.request("tools/call", call))["task"]
            assert created["status"] == "working" and created["ttl"] and created["pollInterval"]
            assert (await server.request("tasks/get", {"taskId": created["taskId"]}))["status"] == "working"
            listed = await server.request("tasks/list", {})
            assert created["taskId"] in [task["taskId"] for task in listed["tasks"]]
            result: dict[str, Any] = {}
            async with anyio.create_task_group() as group:
                group.start_soon(_release_when_held, fake_api)
                result = await server.request("tasks/result", {"taskId": created["taskId"]})  # blocks
            assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": created["taskId"]}
            assert result["structuredContent"]["done"] and not result["isError"]
            status = [
                n["params"] for n in server.notifications if n["method"] == "notifications/tasks/status"
            ]
            assert (
                status and status[-1]["status"] == "completed" and status[-1]["taskId"] == created["taskId"]
            )
            fake_api.rearm()
            second = (await server.request("tools/call", {**call, "arguments": {"tasks": HELD}}))["task"]
            cancelled = await server.request("tasks/cancel", {"taskId": second["taskId"]})
            assert cancelled["status"] == "cancelled"
            again = await server.exchange("tasks/cancel", {"taskId": second["taskId"]})
            assert again["error"]["code"] == -32602
            unknown = await server.exchange("tasks/get", {"taskId": "g-unknown"})
            assert unknown["error"]["code"] == -32602
            plain = await server.request(
                "tools/call", {"name": "run_parallel", "arguments": {"tasks": HELD, "wait_s": 0}}
            )
            assert "task" not in plain and plain["structuredContent"]["done"] is False


async def _release_when_held(fake_api: FakeApi) -> None:
    assert await anyio.to_thread.run_sync(fake_api.wait_held, 2, 10.0)
    fake_api.release()


async def test_a_task_survives_a_kill_and_restart_on_the_same_store(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    store = tmp_path / "tasks.db"
    async with started(argv(tmp_path, store), script_env(fake_api)) as server:
        with anyio.fail_after(60):
            call = as_claude_code(name="run_parallel", arguments={"tasks": HELD, "mode": "merge"})
            created = await server.request("tools/call", call)
            assert await anyio.to_thread.run_sync(fake_api.wait_held, 2, 10.0)
            os.kill(server.pid, signal.SIGKILL)
            await server.exit_status()
    async with started(argv(tmp_path, store), script_env(fake_api)) as server:
        with anyio.fail_after(60):
            ended = await poll(server, created["taskId"])
    assert ended["status"] == "completed"
    outputs = ended["result"]["structuredContent"]["outputs"]["tasks"]
    assert [t["state"] for t in outputs] == ["interrupted", "interrupted"]
    assert ended["result"]["structuredContent"]["synthesis"]["done"]
