"""Core tasks of the 2025-11-25 protocol as VS Code speaks them, in raw JSON-RPC against the installed
``fanout-mcp`` over stdio (the SDK's client cannot read a ``CreateTaskResult``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from tests.fake_api import FakeApi
from tests.tools.cli.test_main import script_env
from tests.tools.served import served
from tests.tools.tasks.test_extension import HELD, argv


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
