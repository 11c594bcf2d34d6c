"""Workspace tools for API subagents, through the real SDK against the fake: the tool loop, its refusals
(which the subagent reads and gets past), its turn limit, and usage counted over every turn."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanout_mcp.server import Settings, TaskRequest, TaskState
from fanout_mcp.server.backends.tooluse import MAX_TURNS
from tests.fake_api import FakeApi
from tests.server.backends.test_anthropic_api import api_runtime, run_tasks

MakeSettings = Callable[..., Settings]


def tools(*rounds: list[dict[str, Any]]) -> str:
    return f"[[tools64:{base64.b64encode(json.dumps(list(rounds)).encode()).decode()}]]"


def use(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "input": arguments}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hello')\n")
    (root / "logo.png").write_bytes(b"\x89PNG\0\0\0")
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret\n")
    (root / "link.txt").symlink_to(secret)
    with (root / "huge.log").open("wb") as huge:
        huge.truncate(50 * 1024 * 1024)
    return root


async def test_a_subagent_reads_the_workspace_gets_readable_refusals_and_carries_on(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path
) -> None:
    first = [use("list_files"), use("read_file", path="../../etc/passwd"), use("read_file", path="link.txt")]
    second = [
        use("read_file", path="logo.png"),
        use("read_file", path="huge.log"),
        use("read_file", path="src/app.py"),
    ]
    task = TaskRequest(task=f"look around {tools(first, second)} [[tool_echo]]", tools=["read"])
    async with api_runtime(make_settings(roots=(root,))) as runtime:
        (snap,) = await run_tasks(runtime, task)
    assert snap.state is TaskState.COMPLETED, snap.error
    results = json.loads(snap.output or "")
    assert [r["is_error"] for r in results] == [False, True, True, True, True, False]
    assert "src/app.py" in results[0]["content"] and "huge.log" in results[0]["content"]
    assert "outside the allowed roots" in results[1]["content"]
    assert "outside the allowed roots" in results[2]["content"] and "the secret" not in results[2]["content"]
    assert "looks binary" in results[3]["content"]
    assert "52,428,800 bytes" in results[4]["content"]
    assert results[5]["content"] == "1: print('hello')"
    calls = [r for r in fake_api.requests if r.path == "/v1/messages"]
    assert len(calls) == 3  # two turns of tool use, then the answer
    assert all(call.body["tools"] for call in calls)
    # 10 output tokens per tool turn at the fake, then a word a token for the answer: every turn counts
    assert snap.usage.output_tokens == 10 + 10 + len((snap.output or "").split())


async def test_the_tool_loop_stops_at_its_turn_limit_with_an_answer(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path
) -> None:
    endless = [[use("list_files")] for _ in range(MAX_TURNS + 5)]
    task = TaskRequest(task=f"{tools(*endless)} [[reply:what I found]]", tools=["read"])
    async with api_runtime(make_settings(roots=(root,))) as runtime:
        (snap,) = await run_tasks(runtime, task)
    assert (snap.state, snap.output) == (TaskState.COMPLETED, "what I found")
    calls = [r for r in fake_api.requests if r.path == "/v1/messages"]
    assert len(calls) == MAX_TURNS
    assert calls[-1].body["tool_choice"] == {"type": "none"}
    assert all("tool_choice" not in call.body for call in calls[:-1])


async def test_spawn_tools_reach_every_task_and_tasks_without_tools_get_none(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path
) -> None:
    async with api_runtime(make_settings(roots=(root,))) as runtime:
        await run_tasks(runtime, TaskRequest(task="[[reply:a]]"), tools=["read"])
        await run_tasks(runtime, TaskRequest(task="[[reply:b]]"))
    with_tools, without = [r.body for r in fake_api.requests if r.path == "/v1/messages"]
    assert [tool["name"] for tool in with_tools["tools"]] == ["list_files", "read_file", "search_text"]
    assert "tools" not in without
