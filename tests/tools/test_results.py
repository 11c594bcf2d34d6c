"""What a model reads of every tool result, through the real MCP client in memory: the structured content
holds the answer and the next call (and, for an error, the message and what to do), the text does not
repeat the outputs, except for a client from before structured output, and no result passes what Claude
Code shows whole (50,000 characters) unless a larger page was asked for."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import mcp.client.session
import pytest
from mcp import Client
from mcp_types import CallToolResult

from server import Settings
from tests.answers import reply, synthesis
from tests.fake_api import FakeApi
from tests.tools.test_handlers import MakeSettings, call, held, sent_chars, structured, text
from tools import create_server

# auto: the 2026-07-28 protocol; legacy: the 2025-11-25 handshake; text-only: a 2025-03-26 client,
# from before structured content, which reads only the text.
CLIENTS = ["auto", "legacy", "text-only"]
SHOWN_WHOLE = 50_000  # Claude Code saves a larger result to a file and shows its model a preview


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``connect(settings, client)``: the server in memory, as one of ``CLIENTS`` sees it."""

    @asynccontextmanager
    async def open_client(settings: Settings, client: str) -> AsyncGenerator[Client]:
        if client == "text-only":  # the SDK's client offers its newest handshake version; offer an older
            monkeypatch.setattr(mcp.client.session, "LATEST_HANDSHAKE_VERSION", "2025-03-26")
        async with Client(create_server(settings), mode="auto" if client == "auto" else "legacy") as session:  # type: ignore[arg-type]
            if client == "text-only":
                assert session.protocol_version == "2025-03-26"
            yield session

    return open_client


async def answer(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert isinstance(result.structured_content, dict)
    return result


def next_of(result: CallToolResult) -> str:
    """The next call, as the structured content says it and the text ends with it."""
    content: Any = result.structured_content
    assert isinstance(content["next"], str) and content["next"], content
    assert text(result).endswith(f"Next: {content['next']}")
    return content["next"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_every_tool_result_says_what_to_call_next_in_its_structured_content(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any, client: str
) -> None:
    async with connect(make_settings(), client) as session:
        spawned = await answer(
            session, "spawn_parallel", tasks=[{"task": "[[reply:a]]"}, {"task": "[[hold]]"}]
        )
        group = structured(spawned)["group_id"]
        assert next_of(spawned).startswith(f'task_output(group_id="{group}")')
        await held(fake_api, 1)
        waiting = await answer(session, "task_output", group_id=group, wait_s=0)
        assert next_of(waiting).startswith("task_output again with the same arguments")
        status = await answer(session, "task_output", group_id=group, include="status", wait_s=0)
        assert next_of(status).startswith("task_output again")
        pending = await answer(session, "synthesize", group_id=group, mode="llm", wait_s=0)
        assert f'synthesize(group_id="{group}", mode="merge")' in next_of(pending)
        merged = await answer(session, "synthesize", group_id=group, mode="merge", wait_s=0)
        assert next_of(merged).startswith("Nothing more: this is the merged answer")
        listed = await answer(session, "list_tasks")
        assert "cancel_tasks" in next_of(listed)
        cancelled = await answer(session, "cancel_tasks", group_id=group)
        assert next_of(cancelled).startswith("task_output or synthesize still read")
        done = await answer(session, "task_output", group_id=group)
        assert next_of(done) == (
            f'synthesize(group_id="{group}") to merge the answers. retry_tasks(group_id="{group}") runs the 1 '
            "failed, cancelled or interrupted task(s) again."
        )
        retried = await answer(session, "retry_tasks", group_id=group)
        assert next_of(retried).startswith(f'task_output(group_id="{structured(retried)["group_id"]}")')


def refusals(tmp_path: Path) -> list[tuple[str, dict[str, Any], str, str]]:
    """Calls that are refused: tool, arguments, the error's kind, and words its message holds."""
    return [
        ("spawn_parallel", {}, "invalid_input", "tasks is missing"),
        (
            "spawn_parallel",
            {"tasks": [{"task": "x"}], "shared_contxt": "y"},
            "invalid_input",
            "shared_contxt",
        ),
        (
            "spawn_parallel",
            {"tasks": [{"task": "x", "files": ["../../etc/passwd"]}]},
            "invalid_input",
            "roots",
        ),
        ("task_output", {"task_ids": ["t-doesnotexist"]}, "not_found", "t-doesnotexist"),
        ("task_output", {"group_id": "g-x", "wait_s": -1}, "invalid_input", "wait_s"),
        ("synthesize", {"group_id": "g-x", "quorum": "most"}, "invalid_input", "quorum"),
        ("cancel_tasks", {"group_id": "g-nope"}, "not_found", "g-nope"),
        ("retry_tasks", {}, "invalid_input", "not neither"),
        ("retry_tasks", {"task_ids": ["t-gone"]}, "not_found", "t-gone"),
        ("list_tasks", {"state": "sleeping"}, "invalid_input", "state"),
        ("apply_changes", {}, "invalid_input", "not neither"),
        ("apply_changes", {"task_ids": ["t-gone"], "discard": True}, "not_found", "t-gone"),
        ("apply_changes", {"undo": "a-nope"}, "invalid_input", "is not an apply this server made"),
        ("no_such_tool", {}, "invalid_input", "Unknown tool"),
    ]


@pytest.mark.parametrize("client", CLIENTS)
async def test_every_refusal_carries_its_message_and_what_to_do_in_its_structured_content_too(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any, client: str, tmp_path: Path
) -> None:
    async with connect(make_settings(), client) as session:
        schemas = {tool.name: tool.output_schema for tool in (await session.list_tools()).tools}
        for tool, arguments, kind, words in refusals(tmp_path):
            result = await session.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments)
            content: Any = result.structured_content
            assert content["error"]["kind"] == kind, (tool, arguments, content)
            assert words in content["error"]["message"], (tool, arguments, content)
            assert (
                content["next"] and text(result) == f"{content['error']['message']}\nNext: {content['next']}"
            )
            # Claude Code's client (the TypeScript SDK) checks any structured content against the
            # tool's output schema, an error's too: it must fit, or the model reads a schema error.
            if schemas.get(tool) is not None:
                jsonschema.validate(content, schemas[tool])


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_spawn_the_server_cannot_run_says_which_backend_and_what_to_do(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    async with connect(make_settings(), client) as session:
        result = await session.call_tool("spawn_parallel", {"tasks": [{"task": "x"}], "backend": "anthropic"})
    content: Any = result.structured_content
    assert result.is_error and content["error"]["kind"] == "backend_unavailable"
    assert "ANTHROPIC_API_KEY" in content["error"]["message"] and "another backend" in content["next"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_task_output_of_twenty_long_tasks_stays_within_what_a_client_shows_whole(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any, client: str
) -> None:
    async with connect(make_settings(), client) as session:
        spawned = await call(
            session, "spawn_parallel", tasks=[{"task": f"[[words:500]] {i}"} for i in range(20)]
        )
        poll = {"group_id": spawned["group_id"], "include": "status", "wait_s": 20}
        with anyio.fail_after(60):
            while not (await call(session, "task_output", **poll))["done"]:
                pass
        result = await answer(session, "task_output", group_id=spawned["group_id"])
    views: Any = structured(result)["tasks"]
    limit = Settings().max_output_chars
    assert 0.9 * limit < sent_chars(result) <= limit < SHOWN_WHOLE  # filled with outputs, not past it
    pages = [len(view["output"]) for view in views]
    assert all(view["truncated"] for view in views) and max(pages) - min(pages) <= 1  # shared fairly
    first = views[0]
    assert f'task_ids=["{first["task_id"]}"], offset={first["next_offset"]}' in next_of(result)


@pytest.mark.parametrize("client", CLIENTS)
async def test_only_a_client_from_before_structured_output_reads_the_outputs_in_the_text(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any, client: str
) -> None:
    outputs = ["the first answer, only here", "the second answer, only here"]
    async with connect(make_settings(), client) as session:
        spawned = await call(session, "spawn_parallel", tasks=[{"task": f"[[reply:{o}]]"} for o in outputs])
        result = await answer(session, "task_output", group_id=spawned["group_id"], wait_s=20)
    views: Any = structured(result)["tasks"]
    assert [view["output"] for view in views] == outputs  # the structured content holds them, always
    for output, task_id in zip(outputs, spawned["task_ids"], strict=True):
        assert task_id in text(result)
        assert (output in text(result)) is (client == "text-only")


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_parsed_answer_comes_back_parsed_and_not_a_second_time_as_text(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any, client: str
) -> None:
    async with connect(make_settings(), client) as session:
        spawned = await call(
            session, "spawn_parallel", tasks=[{"task": "review", "files": []}], output_schema="findings"
        )
        whole = await answer(session, "task_output", group_id=spawned["group_id"], wait_s=20)
        view: Any = structured(whole)["tasks"][0]
        part = await answer(session, "task_output", task_ids=spawned["task_ids"], offset=1, wait_s=0)
    assert view["state"] == "completed" and view["structured"]["findings"] is not None
    assert view["total_chars"] > 0
    if client == "text-only":  # it reads only the text, which is rendered from the outputs
        assert view["output"] and '"findings"' in text(whole)
    else:
        assert view.get("output") is None  # the fake's JSON answer, which structured already holds
        assert '"findings"' not in text(whole)
    page: Any = structured(part)["tasks"][0]
    assert page["output"] and page.get("structured") is None  # part of the text: the text, unparsed
    assert len(page["output"]) == view["total_chars"] - 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_synthesis_says_each_thing_once_in_its_structured_content(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any, client: str
) -> None:
    async with connect(make_settings(), client) as session:
        spawned = await call(
            session, "spawn_parallel", tasks=[{"task": "[[reply:one]]"}, {"task": "[[reply:two]]"}]
        )
        await call(session, "task_output", group_id=spawned["group_id"], wait_s=20)
        ask = reply(synthesis("Fix the injection first.", spawned["task_ids"]))
        result = await answer(
            session, "synthesize", group_id=spawned["group_id"], mode="llm", instructions=ask
        )
        merged = await answer(session, "synthesize", group_id=spawned["group_id"], mode="merge")
    content: Any = result.structured_content
    assert content["findings"] and "markdown" not in content  # the findings, not a second rendering of them
    assert ("## Findings" in text(result)) is (client == "text-only")
    assert "Fix the injection first." in text(result)
    free_text: Any = merged.structured_content  # merged paragraphs of free text are only in the markdown
    assert "one" in free_text["markdown"] and "two" in free_text["markdown"]


async def test_a_larger_page_asked_for_may_pass_the_default_size_and_the_tool_list_allows_it(
    fake_api: FakeApi, make_settings: MakeSettings, connect: Any
) -> None:
    async with connect(make_settings(), "auto") as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        spawned = await call(
            session, "spawn_parallel", tasks=[{"task": "[[words:15000]]", "max_tokens": 15000}]
        )
        ids = spawned["task_ids"]
        default = await answer(session, "task_output", task_ids=ids, wait_s=20)
        larger = await answer(session, "task_output", task_ids=ids, max_chars=100_000)
    # Claude Code reads the limit from the tool list, before any call.
    assert (listed["task_output"].meta or {})["anthropic/maxResultSizeChars"] == 200_000
    assert "anthropic/maxResultSizeChars" not in (default.meta or {}) and sent_chars(default) <= SHOWN_WHOLE
    assert (default.structured_content or {})["tasks"][0]["truncated"] is True
    assert (larger.meta or {})["anthropic/maxResultSizeChars"] == 200_000
    view: Any = structured(larger)["tasks"][0]
    assert view["truncated"] is False and len(view["output"]) == view["total_chars"] > SHOWN_WHOLE
