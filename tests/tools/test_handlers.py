"""The six tools through the real MCP client, in memory, in both protocol eras, against the fake API."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp_types import CallToolResult, TextContent

from server import (
    BackendUnavailable,
    ErrorKind,
    Settings,
    SubagentRequest,
    SubagentResult,
    TaskFailure,
    TaskSink,
)
from server.core.durable import opening as durable_module
from server.core.records import TaskRecord
from server.core.store import MemoryStore
from server.intake import answer_schemas as outputs
from tests.answers import reply, synthesis
from tests.fake_api import FakeApi
from tests.gates import ThreadGate
from tests.server.core.test_retries import reopened
from tests.server.fakes import ScriptedBackend, echo
from tools import create_server

MakeSettings = Callable[..., Settings]
MODES = ["auto", "legacy"]  # auto: the 2026-07-28 protocol in process; legacy: the 2025-11-25 handshake


@asynccontextmanager
async def connect(settings: Settings, mode: str = "auto") -> AsyncGenerator[Client]:
    async with Client(create_server(settings), mode=mode) as client:  # type: ignore[arg-type]
        yield client


def sent_chars(result: CallToolResult) -> int:
    """What a client holds of ``result``: its text, and its structured content as compact JSON."""
    structured = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    return len(text(result)) + len(structured)


def text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def structured(result: CallToolResult) -> dict[str, Any]:
    """The result's structured content: a JSON object, from every tool of this server."""
    content: Any = result.structured_content
    assert isinstance(content, dict)
    return cast(dict[str, Any], content)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return structured(result)


async def error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {text(result)}"
    return text(result)


async def held(fake: FakeApi, n: int) -> None:
    assert await anyio.to_thread.run_sync(fake.wait_held, n, 10.0)


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_with_descriptions_schemas_and_hints(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings(), mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {
        "spawn_parallel",
        "task_output",
        "synthesize",
        "list_tasks",
        "cancel_tasks",
        "retry_tasks",
        "run_parallel",
        "apply_changes",
    }
    for tool in tools.values():
        assert tool.description and len(tool.description) > 100
        assert tool.output_schema is not None
    assert "task_output" in (tools["spawn_parallel"].description or "")
    for name in ("spawn_parallel", "task_output"):  # how to wait on a big group
        assert 'include="status"' in (tools[name].description or "")
    assert tools["task_output"].annotations is not None and tools["task_output"].annotations.read_only_hint
    assert (
        tools["cancel_tasks"].annotations is not None and tools["cancel_tasks"].annotations.destructive_hint
    )
    task_schema = tools["spawn_parallel"].input_schema["properties"]["tasks"]["items"]
    assert task_schema["required"] == ["task"]
    assert {
        "role",
        "context",
        "files",
        "output_format",
        "focus_areas",
        "label",
        "model",
        "max_tokens",
        "timeout_s",
    } <= set(task_schema["properties"])


@pytest.mark.parametrize("mode", MODES)
async def test_spawn_collect_and_synthesize(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    tasks = [
        {
            "task": "Review auth [[reply:SQL injection in login()]]",
            "role": "security reviewer",
            "label": "auth",
        },
        {"task": "Review api [[reply:N+1 queries in list_users()]]", "role": "performance", "label": "api"},
        {"task": "Review db [[reply:SQL injection in login()]]", "role": "security reviewer", "label": "db"},
    ]
    async with connect(make_settings(), mode) as client:
        spawned = await call(client, "spawn_parallel", tasks=tasks, shared_context="A Flask app.")
        assert len(spawned["task_ids"]) == 3 and spawned["group_id"].startswith("g-")
        collected = await call(client, "task_output", group_id=spawned["group_id"], wait_s=20)
        assert collected["done"] is True
        assert collected["counts"]["completed"] == 3
        assert [t["output"] for t in collected["tasks"]] == [
            "SQL injection in login()",
            "N+1 queries in list_users()",
            "SQL injection in login()",
        ]
        assert collected["usage"]["output_tokens"] == sum(
            t["usage"]["output_tokens"] for t in collected["tasks"]
        )

        merged = await call(client, "synthesize", group_id=spawned["group_id"], mode="merge")
        assert merged["done"] and merged["mode"] == "merge"
        first, _, third = spawned["task_ids"]
        assert merged["markdown"].count("SQL injection in login()") == 1
        assert f"_(also: `{third}`)_" in merged["markdown"] and first in merged["markdown"]
        assert merged["missing"] == []

        answer = await call(
            client,
            "synthesize",
            group_id=spawned["group_id"],
            mode="llm",
            instructions="rank by severity " + reply(synthesis("Fix the injection first.", [first, third])),
        )
        assert answer["done"] and answer["mode"] == "llm"
        assert answer["summary"] == "Fix the injection first."
        assert answer["findings"][0]["sources"] == [first, third] and answer["findings"][0]["support"] == 2
        assert answer["actions"][0]["priority"] == 1
        assert "markdown" not in answer  # its findings are in findings: not said twice
        assert answer["synthesis_task_id"]
        assert answer["total_usage"]["output_tokens"] > answer["usage"]["output_tokens"] > 0
        prompt = fake_api.requests[-1].body["messages"][0]["content"]
        for task_id, label in zip(spawned["task_ids"], ["auth", "api", "db"], strict=True):
            assert f'<answer task_id="{task_id}" label="{label}"' in prompt
        assert "rank by severity" in prompt


@pytest.mark.parametrize("mode", MODES)
async def test_spawn_returns_at_once_and_task_output_shows_running_tasks(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings(), mode) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": f"t{i} [[hold]]"} for i in range(3)])
        assert all(t["state"] in {"queued", "running"} for t in spawned["tasks"])
        await held(fake_api, 3)
        result = await client.call_tool("task_output", {"group_id": spawned["group_id"], "wait_s": 0})
        assert result.structured_content is not None
        assert result.structured_content["done"] is False
        assert result.structured_content["counts"]["running"] == 3
        assert "call task_output again with the same arguments" in text(result)
        fake_api.release()
        done = await call(client, "task_output", task_ids=spawned["task_ids"], wait_s=20)
        assert done["done"] is True


async def test_task_output_reports_progress_while_it_waits(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    heard: list[tuple[float, float | None, str | None]] = []
    heartbeats = anyio.Event()
    result: CallToolResult | None = None  # set in the task group below (which nothing cancels)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))
        if len(heard) >= 2:
            heartbeats.set()

    async with connect(make_settings(progress_interval_s=0.05)) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": f"t{i} [[hold]]"} for i in range(2)])
        await held(fake_api, 2)

        async def release_after_heartbeats() -> None:
            await heartbeats.wait()  # two heartbeats arrived while every task was still held
            fake_api.release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(release_after_heartbeats)
            with anyio.fail_after(20):
                result = await client.call_tool(
                    "task_output",
                    {"group_id": spawned["group_id"], "wait_s": 20},
                    progress_callback=on_progress,
                )
    assert result is not None and result.structured_content is not None and result.structured_content["done"]
    values = [value for value, _, _ in heard]
    assert values == sorted(set(values))  # the spec: progress rises with every notification
    assert 0 < values[0] < 1 and heard[0][1] == 2
    assert heard[-1][:2] == (2, 2)
    assert "2/2 finished" in (heard[-1][2] or "")


async def test_wait_s_is_capped_by_the_server(fake_api: FakeApi, make_settings: MakeSettings) -> None:
    async with connect(make_settings(max_wait_s=0.2)) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": "[[hold]]"}])
        with anyio.fail_after(10):  # asked for 1000 s; the cap makes it return
            result = await call(client, "task_output", group_id=spawned["group_id"], wait_s=1000)
        assert result["done"] is False


async def test_long_outputs_are_paged(fake_api: FakeApi, make_settings: MakeSettings) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": "[[words:20]]"}])
        task_id = spawned["task_ids"][0]
        full = "w" + " w".join(str(i) for i in range(1, 21))
        first = await call(client, "task_output", task_ids=[task_id], wait_s=20, max_chars=30)
        view = first["tasks"][0]
        assert (view["output"], view["truncated"], view["next_offset"]) == (full[:30], True, 30)
        result = await client.call_tool("task_output", {"task_ids": [task_id], "max_chars": 30})
        assert "offset=30" in text(result)
        pages = [view["output"]]
        page = view  # the last page read
        offset = 30
        while offset is not None:
            page = (await call(client, "task_output", task_ids=[task_id], offset=offset, max_chars=30))[
                "tasks"
            ][0]
            pages.append(page["output"])
            offset = page.get("next_offset")
        assert "".join(pages) == full
        assert page["truncated"] is False and page["total_chars"] == len(full)


@pytest.mark.parametrize("mode", MODES)
async def test_bad_input_gets_an_error_that_says_what_to_do_and_the_server_keeps_serving(
    fake_api: FakeApi, make_settings: MakeSettings, tmp_path: Path, mode: str
) -> None:
    (tmp_path / "inside.txt").write_text("fine\n")
    async with connect(make_settings(), mode) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": "[[reply:ok]]"}])
        group_id, task_id = spawned["group_id"], spawned["task_ids"][0]
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("spawn_parallel", {"tasks": []}, "tasks is empty"),
            ("spawn_parallel", {"tasks": [{"task": "x"}] * 101}, "more than one spawn may start (100)"),
            ("spawn_parallel", {"tasks": [{"role": "no task"}]}, "task"),
            ("spawn_parallel", {"tasks": [{"prompt": "typo"}]}, "prompt"),
            (
                "spawn_parallel",
                {"tasks": [{"task": "x", "files": ["../../etc/passwd"]}]},
                "outside the allowed roots",
            ),
            ("spawn_parallel", {"tasks": [{"task": "x", "files": ["missing.txt"]}]}, "does not exist"),
            ("spawn_parallel", {"tasks": [{"task": "x", "timeout_s": -5}]}, "timeout_s"),
            ("spawn_parallel", {"tasks": [{"task": "x", "max_tokens": 10**9}]}, "max_tokens"),
            ("spawn_parallel", {"tasks": [{"task": "x"}], "max_concurrency": 0}, "max_concurrency"),
            (
                "spawn_parallel",
                {"tasks": [{"task": "x"}], "output_schema": {"type": "object", "pattern": "(?=a)"}},
                "the pattern '(?=a)' at $.pattern cannot be used",
            ),
            ("task_output", {}, "not neither"),
            ("task_output", {"task_ids": [task_id], "group_id": group_id}, "not both"),
            ("task_output", {"task_ids": ["t-doesnotexist"]}, "Call list_tasks"),
            ("task_output", {"task_ids": [group_id]}, "pass it as group_id"),
            ("task_output", {"group_id": "g-nope"}, "no group with id"),
            ("task_output", {"task_ids": []}, "task_ids is empty"),
            ("task_output", {"task_ids": [task_id], "wait_s": -1}, "wait_s"),
            ("task_output", {"task_ids": [task_id], "max_chars": 0}, "max_chars"),
            ("task_output", {"task_ids": [task_id], "offset": -3}, "offset"),
            ("synthesize", {"group_id": "g-nope"}, "no group with id"),
            ("synthesize", {"group_id": group_id, "mode": "vote"}, "mode"),
            ("cancel_tasks", {"task_ids": ["t-nope"]}, "no task with id"),
            ("retry_tasks", {}, "not neither"),
            ("retry_tasks", {"task_ids": [task_id], "group_id": group_id}, "not both"),
            ("retry_tasks", {"task_ids": ["t-nope"]}, "Call list_tasks"),
            ("retry_tasks", {"group_id": "g-nope"}, "no group with id"),
            ("retry_tasks", {"task_ids": [task_id]}, "nothing to run again"),
            ("list_tasks", {"state": "sleeping"}, "state"),
        ]
        for tool, arguments, words in cases:
            message = await error(client, tool, **arguments)
            assert words in message, (tool, arguments, message)
        listed = await call(client, "list_tasks")
        assert [t["task_id"] for t in listed["tasks"]] == [task_id]
        ok = await call(client, "spawn_parallel", tasks=[{"task": "x", "files": ["inside.txt"]}])
        assert len(ok["task_ids"]) == 1


async def test_list_tasks_is_answered_while_an_answer_is_being_checked(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    with ThreadGate(outputs.parse_json) as gate:
        monkeypatch.setattr(outputs, "parse_json", gate)  # the check of the answer holds here
        async with connect(make_settings()) as client:
            spawned = await call(
                client, "spawn_parallel", tasks=[{"task": '[[reply:{"n": 1}]]'}], output_schema=schema
            )
            await gate.entered()
            with anyio.fail_after(5):
                listed = await call(client, "list_tasks")
            assert [t["state"] for t in listed["tasks"]] == ["running"]  # answered mid-check
            gate.open()
            done = await call(client, "task_output", group_id=spawned["group_id"], wait_s=20)
    assert done["tasks"][0]["state"] == "completed" and done["tasks"][0]["structured"] == {"n": 1}


@pytest.mark.parametrize("mode", MODES)
async def test_without_an_api_key_the_server_starts_and_spawning_says_how_to_configure(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    async with connect(make_settings(), mode) as client:
        assert len((await client.list_tools()).tools) == 8  # the six, run_parallel and apply_changes
        message = await error(client, "spawn_parallel", tasks=[{"task": "x"}])
        assert "ANTHROPIC_API_KEY" in message
        assert (await call(client, "list_tasks"))["tasks"] == []
    assert fake_api.requests == []


async def test_cancel_tasks_cancels_the_unfinished_and_reports_the_finished(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(
            client,
            "spawn_parallel",
            tasks=[{"task": "[[reply:quick]]"}, {"task": "[[hold]]"}, {"task": "[[hold]]"}],
        )
        quick = spawned["task_ids"][0]
        await call(client, "task_output", task_ids=[quick], wait_s=20)
        await held(fake_api, 2)
        cancelled = await call(client, "cancel_tasks", group_id=spawned["group_id"])
        assert cancelled["cancelled"] == spawned["task_ids"][1:]
        assert cancelled["already_finished"] == [{"task_id": quick, "state": "completed"}]
        assert cancelled["counts"] == {
            "queued": 0,
            "running": 0,
            "completed": 1,
            "failed": 0,
            "cancelled": 2,
            "interrupted": 0,
        }
        still = await call(client, "task_output", task_ids=[quick])
        assert still["tasks"][0]["output"] == "quick"
    assert await anyio.to_thread.run_sync(fake_api.wait_idle, 10.0)


async def test_list_tasks_filters_by_group_and_state(fake_api: FakeApi, make_settings: MakeSettings) -> None:
    async with connect(make_settings()) as client:
        first = await call(
            client, "spawn_parallel", tasks=[{"task": "[[reply:a]]"}, {"task": "[[fail:400]]"}]
        )
        second = await call(client, "spawn_parallel", tasks=[{"task": "[[reply:b]]"}])
        await call(client, "task_output", group_id=first["group_id"], wait_s=20)
        await call(client, "task_output", group_id=second["group_id"], wait_s=20)
        everything = await call(client, "list_tasks")
        assert len(everything["tasks"]) == 3 and "output" not in everything["tasks"][0]
        mine = await call(client, "list_tasks", group_id=first["group_id"])
        assert [t["task_id"] for t in mine["tasks"]] == first["task_ids"]
        failed = await call(client, "list_tasks", state="failed")
        assert [t["task_id"] for t in failed["tasks"]] == [first["task_ids"][1]]
        assert failed["tasks"][0]["error"]["kind"] == "invalid_input"


async def test_synthesis_lists_failed_and_unfinished_tasks_as_missing(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(
            client,
            "spawn_parallel",
            tasks=[
                {"task": "[[reply:answer]]", "label": "good"},
                {"task": "[[fail:400;message=bad request]]", "label": "broken"},
                {"task": "[[hold]]", "label": "slow"},
            ],
        )
        await held(fake_api, 1)
        merged = await call(client, "synthesize", group_id=spawned["group_id"], mode="merge", wait_s=0.1)
        missing = {m["label"]: m for m in merged["missing"]}
        assert set(missing) == {"broken", "slow"}
        assert missing["broken"]["state"] == "failed" and "bad request" in missing["broken"]["reason"]
        assert missing["slow"]["state"] == "running" and "call synthesize again" in missing["slow"]["reason"]
        assert "2 task(s) have no answer" in merged["summary"]
        assert [s["label"] for s in merged["sources"]] == ["good"]


async def test_a_slow_model_synthesis_is_resumed_not_restarted(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(
            client, "spawn_parallel", tasks=[{"task": "[[reply:one]]"}, {"task": "[[reply:two]]"}]
        )
        await call(client, "task_output", group_id=spawned["group_id"], wait_s=20)
        arguments = {
            "group_id": spawned["group_id"],
            "mode": "llm",
            "instructions": "[[hold]] " + reply(synthesis()),
            "wait_s": 0.1,
        }
        first = await client.call_tool("synthesize", arguments)
        assert first.structured_content is not None and first.structured_content["done"] is False
        synthesis_id = first.structured_content["synthesis_task_id"]
        assert "again with the same arguments" in first.structured_content["next"]
        assert synthesis_id in first.structured_content["next"] and synthesis_id in text(first)
        await held(fake_api, 1)
        fake_api.release()
        second = await call(client, "synthesize", **{**arguments, "wait_s": 20})
        assert second["done"] and second["synthesis_task_id"] == synthesis_id
    synthesis_requests = [r for r in fake_api.requests if "[[hold]]" in r.body["messages"][0]["content"]]
    assert len(synthesis_requests) == 1


async def test_a_model_synthesis_waits_for_every_task_and_costs_nothing_until_then(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(
            client, "spawn_parallel", tasks=[{"task": "[[reply:one]]"}, {"task": "[[hold]]"}]
        )
        await held(fake_api, 1)
        # The other task must have ended too (it answers at once, but may not have yet under load).
        first = await call(client, "task_output", task_ids=spawned["task_ids"][:1], wait_s=20)
        assert first["done"]
        arguments = {"group_id": spawned["group_id"], "mode": "llm", "instructions": reply(synthesis())}
        result = await client.call_tool("synthesize", {**arguments, "wait_s": 0})
        assert result.structured_content is not None
        assert result.structured_content["done"] is False
        assert "synthesis_task_id" not in result.structured_content
        assert "1 of 2 task(s) are still queued or running" in result.structured_content["notes"][0]
        assert 'mode="merge"' in result.structured_content["next"]
        assert len(fake_api.requests) == 2  # no synthesis request was sent
        fake_api.release()
        done = await call(client, "synthesize", **arguments, wait_s=20)
        assert done["done"] and done["mode"] == "llm" and len(done["sources"]) == 2


@pytest.mark.parametrize("mode", ["llm", "auto"])
async def test_a_synthesis_over_no_answer_says_why_each_task_has_none_and_asks_no_model(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(
            client,
            "spawn_parallel",
            tasks=[
                {"task": "[[fail:400;message=prompt is too long]]", "label": "big"},
                {"task": "[[fail:404;message=model: nope]]", "label": "wrong model"},
            ],
        )
        result = await client.call_tool("synthesize", {"group_id": spawned["group_id"], "mode": mode})
    done: Any = result.structured_content
    assert done["done"] is True and done.get("synthesis_task_id") is None
    assert done["summary"].startswith("Nothing to synthesize: none of the 2 task(s) has an answer")
    assert [(m["label"], m["state"]) for m in done["missing"]] == [
        ("big", "failed"),
        ("wrong model", "failed"),
    ]
    assert "prompt is too long" in done["missing"][0]["reason"]
    assert "no model synthesis was started" in " ".join(done["notes"])
    assert text(result).startswith("Nothing to synthesize")
    assert len(fake_api.requests) == 2  # the two tasks' own; no synthesis request


async def test_a_result_with_every_output_stays_within_the_servers_size_limit_shared_fairly(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with connect(make_settings(max_output_chars=4_000)) as client:
        spawned = await call(
            client,
            "spawn_parallel",
            tasks=[{"task": "[[words:600]]"}, {"task": "[[words:600]]"}, {"task": "[[reply:short]]"}],
        )
        await call(client, "task_output", group_id=spawned["group_id"], wait_s=20, include="status")
        result = await client.call_tool("task_output", {"group_id": spawned["group_id"]})
        assert sent_chars(result) <= 4_000
        views: Any = structured(result)["tasks"]
        assert views[2]["output"] == "short" and views[2]["truncated"] is False
        full = " ".join(f"w{i}" for i in range(1, 601))
        assert views[0]["truncated"] and views[0]["next_offset"] == len(views[0]["output"]) > 400
        assert abs(len(views[1]["output"]) - len(views[0]["output"])) <= 1  # the long ones share alike
        assert views[0]["output"] == full[: views[0]["next_offset"]]
        rest = await call(
            client, "task_output", task_ids=[views[0]["task_id"]], offset=views[0]["next_offset"]
        )
        page = rest["tasks"][0]
        assert page["output"] == full[views[0]["next_offset"] : page.get("next_offset", len(full))]


async def test_list_tasks_shows_the_newest_and_counts_them_all(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": f"[[reply:{i}]]"} for i in range(5)])
        await call(client, "task_output", group_id=spawned["group_id"], wait_s=20)
        listing = await call(client, "list_tasks", limit=2)
        assert listing["total"] == 5 and listing["counts"]["completed"] == 5
        assert [t["task_id"] for t in listing["tasks"]] == spawned["task_ids"][-2:]
        result = await client.call_tool("list_tasks", {"limit": 2})
        assert "showing the newest 2" in text(result)


async def test_a_budget_stops_a_spawn_and_every_result_reports_the_groups_totals(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(
            client, "spawn_parallel", tasks=[{"task": f"[[words:50]] {i}"} for i in range(4)], max_concurrency=1,
            budget_usd=0.000001,
        )  # fmt: skip
        result = await client.call_tool("task_output", {"group_id": spawned["group_id"], "wait_s": 20})
        content: Any = result.structured_content
        assert [t["state"] for t in content["tasks"]] == ["completed"] + ["cancelled"] * 3
        assert {t["error"]["kind"] for t in content["tasks"][1:]} == {"budget_exceeded"}
        (group,) = content["groups"]
        assert group["group_id"] == spawned["group_id"] and group["budget_usd"] == 0.000001
        assert group["spent_usd"] > 0.000001 and group["usage"]["cost_usd"] == pytest.approx(
            group["spent_usd"]
        )
        assert "budget $1e-06" in text(result) and "reached" in text(result)
        merged = await call(client, "synthesize", group_id=spawned["group_id"], mode="merge")
        assert merged["groups"][0]["spent_usd"] == group["spent_usd"]
    assert len(fake_api.requests) == 1


def instant(release: anyio.Event) -> Any:
    """Answers at once: "<fail>" in the task fails it, "<hold>" waits for ``release`` first."""

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if "<fail>" in request.prompt:
            raise TaskFailure(ErrorKind.API_ERROR, "it broke")
        if "<hold>" in request.prompt:
            await release.wait()
        return await echo(request, sink)

    return handler


async def poll_until(
    client: Client, arguments: dict[str, Any], ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Call task_output with ``arguments`` until its answer is ``ready``; that answer."""
    with anyio.fail_after(30):
        while not ready(answer := await call(client, "task_output", **arguments)):
            pass
    return answer


@pytest.mark.parametrize("mode", MODES)
async def test_a_status_poll_of_a_big_group_returns_ids_by_state_in_a_few_bytes_a_task(
    make_settings: MakeSettings, mode: str
) -> None:
    n = 2_000
    release = anyio.Event()
    settings = make_settings(max_tasks_per_spawn=n, max_concurrency=100)
    tasks = [
        {"task": f"part {i}" + (" <fail>" if i % 10 == 1 else " <hold>" if i >= n - 3 else "")}
        for i in range(n)
    ]
    async with Client(create_server(settings, ScriptedBackend(instant(release))), mode=mode) as client:  # type: ignore[arg-type]
        schema = next(t for t in (await client.list_tools()).tools if t.name == "task_output").output_schema
        spawn = await client.call_tool("spawn_parallel", {"tasks": tasks})
        spawned: Any = spawn.structured_content
        ids: list[str] = spawned["task_ids"]
        poll = {"group_id": spawned["group_id"], "include": "status", "wait_s": 0.5}
        assert f'task_output(group_id="{spawned["group_id"]}", include="status")' in text(spawn)
        status = await poll_until(
            client, poll, lambda s: s["counts"]["running"] == 3 and not s["counts"]["queued"]
        )
        assert status["done"] is False and status["tasks"] == []
        assert status["counts"] == {
            "queued": 0,
            "running": 3,
            "completed": n - 203,
            "failed": 200,
            "cancelled": 0,
            "interrupted": 0,
        }
        assert status["ids_by_state"] == {
            "queued": [],
            "running": ids[-3:],
            "completed": [t for i, t in enumerate(ids[:-3]) if i % 10 != 1],
            "failed": ids[1::10],
            "cancelled": [],
            "interrupted": [],
        }
        assert status["groups"][0]["tasks"] == n and status["waited_s"] >= 0
        # A few bytes a task, where the full answer takes hundreds (ids are 18 characters).
        assert len(json.dumps(status)) < 25 * n
        result = await client.call_tool("task_output", poll)
        assert "call task_output again with the same arguments" in text(result)
        assert ids[1] not in text(result)  # the ids are in the structured content, and only there
        release.set()
        status = await poll_until(client, poll, lambda s: s["done"])
        assert status["counts"]["completed"] == n - 200
        full = await call(client, "task_output", task_ids=ids[:2])
        assert "ids_by_state" not in full and [t["task_id"] for t in full["tasks"]] == ids[:2]
    assert schema is not None  # the client checked every answer against it; so does this, for both shapes
    for content in (status, full):
        jsonschema.validate(content, schema)


async def test_task_output_of_one_task_reads_that_task_not_its_whole_group(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: Counter[str] = Counter()
    for name in ("snapshot", "usage"):
        original = getattr(TaskRecord, name)

        def counted(self: TaskRecord, *args: Any, _original: Any = original, _name: str = name) -> Any:
            reads[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(TaskRecord, name, counted)
    settings = make_settings(max_tasks_per_spawn=50)
    async with Client(create_server(settings, ScriptedBackend())) as client:  # type: ignore[arg-type]
        spawned = await call(client, "spawn_parallel", tasks=[{"task": f"part {i}"} for i in range(50)])
        with anyio.fail_after(30):
            await call(client, "task_output", group_id=spawned["group_id"], wait_s=20, include="status")
        reads.clear()
        one = await call(client, "task_output", task_ids=spawned["task_ids"][:1], wait_s=0)
        assert one["groups"][0]["tasks"] == 50
        assert reads == {"snapshot": 1, "usage": 1}  # its own snapshot, which holds its usage
        reads.clear()
        status = await call(client, "task_output", group_id=spawned["group_id"], include="status")
        assert status["done"] and reads == {}  # the whole group, and not one snapshot


@pytest.mark.parametrize("mode", MODES)
async def test_retry_tasks_runs_failed_and_cancelled_tasks_again_as_first_asked_in_a_new_group(
    fake_api: FakeApi, make_settings: MakeSettings, tmp_path: Path, mode: str
) -> None:
    (tmp_path / "notes.txt").write_text("the notes, read again\n")
    tasks = [
        {"task": "[[reply:kept]]", "label": "kept"},
        {"task": "[[fail:400;count=1]] [[reply:fixed]]", "label": "flaky", "context": "only login()",
         "files": ["notes.txt"]},
        {"task": "[[hold]] [[reply:slow]]", "label": "slow"},
    ]  # fmt: skip
    async with connect(make_settings(), mode) as client:
        spawned = await call(client, "spawn_parallel", tasks=tasks, shared_context="A Flask app.")
        group_id, ids = spawned["group_id"], spawned["task_ids"]
        await held(fake_api, 1)
        await call(client, "cancel_tasks", task_ids=[ids[2]])
        ended = await call(client, "task_output", group_id=group_id, wait_s=20)
        assert ended["counts"] == {
            "queued": 0, "running": 0, "completed": 1, "failed": 1, "cancelled": 1, "interrupted": 0
        }  # fmt: skip
        assert f'retry_tasks(group_id="{group_id}") runs the 2 failed, cancelled' in ended["next"]
        fake_api.release()

        retried = await call(client, "retry_tasks", group_id=group_id)

        assert [(t["label"], t["retry_of"]) for t in retried["tasks"]] == [
            ("flaky", ids[1]),
            ("slow", ids[2]),
        ]
        (skipped,) = retried["skipped"]
        assert (skipped["state"], skipped["count"], skipped["task_ids"]) == ("completed", 1, [ids[0]])
        assert "not run again" in skipped["reason"]
        new_group = retried["group_id"]
        assert new_group != group_id and f'task_output(group_id="{new_group}")' in retried["next"]
        assert "synthesize(task_ids=[...])" in retried["next"]  # with the answer that stood
        done = await call(client, "task_output", group_id=new_group, wait_s=20)
        assert [(t["output"], t["retry_of"]) for t in done["tasks"]] == [("fixed", ids[1]), ("slow", ids[2])]
        listed = await call(client, "list_tasks", group_id=new_group)
        assert [t["retry_of"] for t in listed["tasks"]] == ids[1:]
        first_listed = await call(client, "list_tasks", group_id=group_id)
        assert all("retry_of" not in t for t in first_listed["tasks"])  # null: left out
    flaky = [r.body for r in fake_api.requests if "only login()" in json.dumps(r.body)]
    assert len(flaky) == 2  # the first try and the re-run, each as it was asked for
    assert all("A Flask app." in json.dumps(body["system"]) for body in flaky)
    assert "the notes, read again" in json.dumps(flaky[-1]["messages"])


async def test_after_a_restart_interrupted_tasks_are_shown_and_one_call_runs_them_again(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores: list[MemoryStore] = []

    def first_store() -> MemoryStore:
        stores.append(MemoryStore())
        return stores[-1]

    monkeypatch.setattr(durable_module, "MemoryStore", first_store)  # what --store memory opens
    tasks = [
        {"task": "[[reply:ground]]", "label": "ground"},
        {"task": "[[hold:after=2]] [[words:4]]", "label": "streaming", "depends_on": ["ground"]},
        {"task": "[[hold]] [[reply:queued one]]", "label": "held"},
    ]
    async with connect(make_settings(store="memory")) as client:
        spawned = await call(client, "spawn_parallel", tasks=tasks)
        group_id, ids = spawned["group_id"], spawned["task_ids"]
        await held(fake_api, 2)
        poll = {"task_ids": [ids[1]], "wait_s": 0}
        running = await poll_until(client, poll, lambda answer: bool(answer["tasks"][0].get("output")))
        partial = {ids[1]: running["tasks"][0]["output"], ids[2]: ""}  # two deltas streamed, then held
        left = reopened(stores[0], group_id, partial)  # the store as it stood when its process died
    fake_api.release()

    monkeypatch.setattr(durable_module, "MemoryStore", lambda: left)
    async with connect(make_settings(store="memory")) as client:  # a new server process on that store
        listed = await call(client, "list_tasks", state="interrupted")
        assert [t["task_id"] for t in listed["tasks"]] == ids[1:]
        assert (
            "retry_tasks(task_ids=[...]) runs the 2 failed, cancelled or interrupted task(s) again"
            in listed["next"]
        )
        shown = await call(client, "task_output", group_id=group_id)
        assert shown["done"] and shown["counts"]["interrupted"] == 2
        assert shown["tasks"][1]["output"] == partial[ids[1]] and shown["tasks"][1]["partial"]
        assert shown["tasks"][1]["note"] == "its server process ended"
        merged = await call(client, "synthesize", group_id=group_id, mode="merge")
        assert {m["state"] for m in merged["missing"]} == {"interrupted"}
        assert all("retry_tasks runs it again" in m["reason"] for m in merged["missing"])
        assert "retry_tasks(task_ids=[...])" in merged["next"]

        retried = await call(client, "retry_tasks", group_id=group_id)
        done = await call(client, "task_output", group_id=retried["group_id"], wait_s=20)

    assert [(t["state"], t["retry_of"]) for t in done["tasks"]] == [
        ("completed", ids[1]),
        ("completed", ids[2]),
    ]
    assert done["tasks"][1]["output"] == "queued one"
    streamed = [r.body for r in fake_api.requests if "[[hold:after=2]]" in json.dumps(r.body)]
    assert "ground" in json.dumps(streamed[-1]["messages"])  # the answer of the task that completed before
    assert sum("[[reply:ground]]" in json.dumps(r.body) for r in fake_api.requests) == 1  # not run again


async def test_a_store_that_cannot_be_read_after_the_wait_makes_task_output_say_backend_unavailable(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ReadOnceThenAway(MemoryStore):
        """A store of tasks run elsewhere (Temporal's) whose cluster stops answering after one read."""

        reads = 0

        async def refresh(self, task_ids: Sequence[str]) -> None:
            ReadOnceThenAway.reads += 1
            if ReadOnceThenAway.reads > 1:
                raise BackendUnavailable("could not read group g-x from Temporal (Timeout expired)")

    monkeypatch.setattr(durable_module, "MemoryStore", ReadOnceThenAway)  # what --store memory opens
    async with connect(make_settings(store="memory")) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": "[[reply:fine]]"}])
        ReadOnceThenAway.reads = 0
        refused = await client.call_tool("task_output", {"task_ids": spawned["task_ids"], "wait_s": 0})
    answer: Any = refused.structured_content
    assert refused.is_error and answer["error"]["kind"] == "backend_unavailable", (
        answer
    )  # not a bug of the server's
    assert "Timeout expired" in answer["error"]["message"]
