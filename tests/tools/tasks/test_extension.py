"""The 2026-07-28 tasks extension as Claude Code speaks it (the extension declared in each request's own
_meta): through the real MCP client in memory, and in raw JSON-RPC against the installed server over
stdio (a transcript of Claude Code's flow, and a restart in the middle). A handle at once, polls through
working to the end, cancel both ways, failures, unknown ids."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp_types import CallToolResult

from server import Settings
from tests.fake_api import FakeApi
from tests.tools.cli.test_main import script_env
from tests.tools.served import SCRIPT, Served, started
from tests.tools.tasks.client import EXTENSION, CreatedTask, TasksClient, call_as_task, cancel_task, get_task
from tests.tools.test_handlers import MakeSettings, call, held, structured
from tools import create_server
from tools.tasks import book

HELD = [{"task": "[[hold]]", "label": "a"}, {"task": "[[hold]]", "label": "b"}]


@asynccontextmanager
async def tasks_client(settings: Settings) -> AsyncGenerator[Client]:
    async with Client(create_server(settings), extensions=[TasksClient()]) as client:
        yield client


async def handle(client: Client, tool: str, **arguments: Any) -> CreatedTask:
    answer = await call_as_task(client, tool, arguments)
    assert isinstance(answer, CreatedTask), answer
    return answer


async def until_ended(client: Client, task_id: str) -> Any:
    """Poll as Claude Code does (at once, then every pollIntervalMs) until the task has ended."""
    with anyio.fail_after(30):
        while True:
            polled = await get_task(client, task_id)
            if polled.status != "working":
                return polled
            await anyio.sleep((polled.poll_interval_ms or 1000) / 1000)


async def test_run_parallel_answers_with_a_handle_at_once_and_the_result_holds_every_output_and_the_synthesis(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with tasks_client(make_settings()) as client:
        created = await handle(client, "run_parallel", tasks=HELD, mode="llm")
        group_id, kind, _ = created.task_id.split(".")  # the group's id names the handle
        assert group_id.startswith("g-") and kind == "run" and created.status == "working"
        await held(fake_api, 2)  # the handle came back while both subagents were still running
        working = await get_task(client, created.task_id)
        assert working.status == "working" and working.status_message is not None
        assert "0 of 2 done" in working.status_message and "2 running" in working.status_message
        assert working.poll_interval_ms == 1000 and working.ttl_ms
        fake_api.release()
        ended = await until_ended(client, created.task_id)
        assert ended.last_updated_at != working.last_updated_at
        assert ended.status == "completed" and ended.result is not None
        result = CallToolResult.model_validate(ended.result)
        answer = structured(result)
        assert not result.is_error and answer["done"]
        assert [t["state"] for t in answer["outputs"]["tasks"]] == ["completed", "completed"]
        assert answer["synthesis"]["mode"] == "llm" and answer["synthesis"]["done"]
        listed = await call(client, "list_tasks", group_id=group_id)
        assert listed["counts"]["completed"] == 2


async def test_tasks_cancel_cancels_the_fan_out_and_cancel_tasks_on_the_group_ends_the_handle(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with tasks_client(make_settings()) as client:
        first = await handle(client, "run_parallel", tasks=HELD)
        assert first.task_id.startswith("g-") and "." not in first.task_id  # the group's id itself
        await held(fake_api, 2)
        await cancel_task(client, first.task_id)
        assert (await until_ended(client, first.task_id)).status == "cancelled"
        # The handle's id is the group's: the plain tools take it as it is.
        listed = await call(client, "list_tasks", group_id=first.task_id)
        assert listed["counts"]["cancelled"] == 2
        second = await handle(client, "run_parallel", tasks=HELD, mode="merge")
        group_id = second.task_id.split(".")[0]
        assert await anyio.to_thread.run_sync(fake_api.wait_requests, 4, 10.0)
        await call(client, "cancel_tasks", group_id=group_id)
        assert (await until_ended(client, second.task_id)).status == "cancelled"


async def test_a_fan_out_whose_every_subagent_fails_completes_with_the_failures_in_its_result(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    failing = [
        {"task": "[[hold]][[fail:400;message=bad one]]"},
        {"task": "[[hold]][[fail:400;message=bad two]]"},
    ]
    async with tasks_client(make_settings()) as client:
        created = await handle(client, "run_parallel", tasks=failing, mode="merge")
        fake_api.release()
        ended = await until_ended(client, created.task_id)
    assert ended.status == "completed"
    result = CallToolResult.model_validate(ended.result)
    assert not result.is_error
    assert [t["state"] for t in structured(result)["outputs"]["tasks"]] == ["failed", "failed"]


async def test_an_internal_error_ends_the_task_failed_with_the_error(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> CallToolResult:
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(book, "collect", broken)
    async with tasks_client(make_settings()) as client:
        created = await handle(client, "run_parallel", tasks=HELD)
        ended = await until_ended(client, created.task_id)
    assert ended.status == "failed" and ended.error is not None
    assert "the engine broke" in ended.error["message"]


async def test_task_output_and_synthesize_that_would_wait_answer_with_handles(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with tasks_client(make_settings()) as client:
        spawned = await call(client, "spawn_parallel", tasks=HELD)
        group = spawned["group_id"]
        look = await call_as_task(client, "task_output", {"group_id": group, "wait_s": 0})
        assert isinstance(look, CallToolResult) and not structured(look)["done"]  # a look: no handle
        waiting = await handle(client, "task_output", group_id=group)
        merging = await handle(client, "synthesize", group_id=group, mode="llm")
        assert waiting.task_id.startswith(group) and merging.task_id.startswith(group)
        fake_api.release()
        outputs = CallToolResult.model_validate((await until_ended(client, waiting.task_id)).result)
        merged = CallToolResult.model_validate((await until_ended(client, merging.task_id)).result)
        assert structured(outputs)["done"] and structured(merged)["done"]
        # Nothing left to wait for: a plain result, no handle.
        again = await call_as_task(client, "task_output", {"group_id": group})
        assert isinstance(again, CallToolResult) and structured(again)["done"]


async def test_an_unknown_id_is_the_protocols_error_and_a_client_without_the_extension_is_refused(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    async with tasks_client(settings) as client:
        for unknown in ("g-nothing", "nonsense", "g-x.run.!!", "g-x.task_output.e30"):
            with pytest.raises(MCPError) as refused:
                await get_task(client, unknown)
            assert refused.value.error.code == -32602
    async with Client(create_server(settings)) as plain:
        with pytest.raises(MCPError) as refused:
            await get_task(plain, "g-nothing")
        assert refused.value.error.code == -32021


async def test_tasks_cancel_during_the_model_synthesis_cancels_the_synthesis_too(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    quick = [{"task": "[[reply:one]]"}, {"task": "[[reply:two]]"}]
    async with tasks_client(make_settings()) as client:
        created = await handle(client, "run_parallel", tasks=quick, mode="llm", instructions="[[hold]]")
        await held(fake_api, 1)  # the sources have ended; the synthesis waits at the gate
        await cancel_task(client, created.task_id)
        assert (await until_ended(client, created.task_id)).status == "cancelled"
        listed = await call(client, "list_tasks")
    states = [task["state"] for task in listed["tasks"]]
    assert states == ["completed", "completed", "cancelled"]


# --- against the installed server over stdio, in raw JSON-RPC, as Claude Code speaks ---------------------

# What Claude Code (2.1.319) puts in the _meta of every request: the extension among its capabilities.
CLAUDE_CODE: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "claude-code", "version": "2.1.319"},
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "extensions": {EXTENSION: {}}},
}


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
            # Both subagents reach the provider first (their runners start once the spawn is saved):
            # the first poll, sent at once by Claude Code, then finds them running, not yet queued.
            assert await anyio.to_thread.run_sync(fake_api.wait_held, 2, 15.0)
            first = await server.request("tasks/get", as_claude_code(taskId=created["taskId"]))
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
