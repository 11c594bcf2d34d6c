"""The sampling backend: tasks answered by the client's own model, where the session allows it, and a
clear refusal everywhere else (2026-07-28 sessions, clients without the capability)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from server import Settings
from tests.tools.test_handlers import call, error
from tools import create_server

MakeSettings = Callable[..., Settings]


class ClientModel:
    """The client's sampling callback: answers with the first line of the task, and records requests."""

    def __init__(self) -> None:
        self.requests: list[types.CreateMessageRequestParams] = []

    async def __call__(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.requests.append(params)
        last = params.messages[-1].content
        assert isinstance(last, types.TextContent)
        task = last.text.split("Task", 1)[-1].strip(": \n").splitlines()[0]
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"client model did: {task}"),
            model="client-llm-1",
            stop_reason="endTurn",
        )


async def test_tasks_on_sampling_are_answered_by_the_clients_model_in_a_2025_session(
    make_settings: MakeSettings,
) -> None:
    model = ClientModel()
    tasks = [{"task": f"part {i}", "backend": "sampling"} for i in range(3)]
    with anyio.fail_after(20):
        async with Client(create_server(make_settings()), mode="legacy", sampling_callback=model) as client:
            spawned = await call(client, "spawn_parallel", tasks=tasks, shared_context="the shared part")
            collected = await call(client, "task_output", group_id=spawned["group_id"], wait_s=10)
    assert collected["done"]
    outputs = sorted(view["output"] for view in collected["tasks"])
    assert outputs == [f"client model did: part {i}" for i in range(3)]
    assert {(v["backend"], v["model"], v["state"]) for v in collected["tasks"]} == {
        ("sampling", "client-llm-1", "completed")
    }
    assert all(v["usage"]["cost_usd"] is None for v in collected["tasks"])  # the client pays: unknown
    assert len(model.requests) == 3
    assert all(r.system_prompt and "the shared part" in r.system_prompt for r in model.requests)


async def test_a_named_model_reaches_the_client_as_a_hint(make_settings: MakeSettings) -> None:
    model = ClientModel()
    task = {"task": "part", "backend": "sampling", "model": "claude-haiku-5-5", "max_tokens": 321}
    async with Client(create_server(make_settings()), mode="legacy", sampling_callback=model) as client:
        spawned = await call(client, "spawn_parallel", tasks=[task])
        await call(client, "task_output", group_id=spawned["group_id"], wait_s=10)
    (params,) = model.requests
    assert params.max_tokens == 321
    assert params.model_preferences is not None and params.model_preferences.hints is not None
    assert params.model_preferences.hints[0].name == "claude-haiku-5-5"


async def test_a_2026_session_gets_a_clear_error_naming_what_to_use_instead(
    make_settings: MakeSettings,
) -> None:
    async with Client(create_server(make_settings()), mode="auto", sampling_callback=ClientModel()) as client:
        message = await error(client, "spawn_parallel", tasks=[{"task": "x", "backend": "sampling"}])
    assert "has no channel for the server to ask the client's model" in message
    assert "2026-07-28" in message and "backend 'anthropic'" in message


async def test_a_client_without_sampling_gets_a_clear_error(make_settings: MakeSettings) -> None:
    async with Client(create_server(make_settings()), mode="legacy") as client:
        message = await error(client, "spawn_parallel", tasks=[{"task": "x"}], backend="sampling")
    assert "this MCP client does not offer sampling" in message


async def test_auto_falls_back_to_the_clients_model_when_there_is_no_key_and_no_cli(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no claude here
    model = ClientModel()
    async with Client(create_server(make_settings()), mode="legacy", sampling_callback=model) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": "fallback"}])
        collected = await call(client, "task_output", group_id=spawned["group_id"], wait_s=10)
    (view,) = collected["tasks"]
    assert (view["backend"], view["output"]) == ("sampling", "client model did: fallback")


async def test_refusals_start_with_the_backend_unavailable_kind(make_settings: MakeSettings) -> None:
    async with Client(create_server(make_settings()), mode="legacy") as client:
        message = await error(client, "spawn_parallel", tasks=[{"task": "x", "backend": "sampling"}])
    assert message.startswith("backend_unavailable: task 1")


class HeldClientModel(ClientModel):
    """A client model that holds every request until ``release`` and counts how many it holds at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = anyio.Event()
        self.in_flight = self.most = 0

    async def __call__(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
            return await super().__call__(context, params)
        finally:
            self.in_flight -= 1


async def test_one_client_is_asked_at_most_four_things_at_once_across_all_its_spawns(
    make_settings: MakeSettings,
) -> None:
    model = HeldClientModel()
    tasks = [{"task": f"part {i}", "backend": "sampling"} for i in range(3)]
    with anyio.fail_after(20):
        async with Client(create_server(make_settings()), mode="legacy", sampling_callback=model) as client:
            groups = [(await call(client, "spawn_parallel", tasks=tasks))["group_id"] for _ in range(2)]
            while model.in_flight < 4:  # the server runs in this event loop: let it go as far as it can
                await anyio.wait_all_tasks_blocked()
            await anyio.wait_all_tasks_blocked()
            model.release.set()
            for group in groups:
                collected = await call(client, "task_output", group_id=group, wait_s=10)
                assert collected["done"] and collected["counts"]["completed"] == 3
    assert model.most == 4  # six tasks from two spawns: one bound for the client, not one per spawn
