"""Workspace tools for API subagents, through the real SDK against the fake: the tool loop, its refusals
(which the subagent reads and gets past), its turn limit, and usage counted over every turn."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from server import (
    ErrorKind,
    Settings,
    SpawnRequest,
    SubagentRequest,
    TaskRequest,
    TaskState,
    Tokens,
)
from server.app.runtime import make_client
from server.backends.anthropic_api import AnthropicBackend
from server.backends.throttle import Throttle
from server.backends.tooluse import MAX_TURNS, ToolUse, run_uses
from server.backends.workspace import Stopped, ToolAnswer, Workspace
from server.intake.files import FileInfo, FileReader
from tests.fake_api import FakeApi
from tests.server.backends.test_anthropic_api import api_runtime, run_tasks
from tests.server.fakes import ME

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


class GatedReader(FileReader):
    """A reader that holds the worker thread the first time it checks ``gated``; records every name checked."""

    def __init__(self, root: Path, gated: str) -> None:
        super().__init__([root], max_file_bytes=100_000)
        self.gated = gated
        self.entered = anyio.Event()
        self.release = threading.Event()
        self.checked: list[str] = []

    def check(self, raw: str) -> FileInfo:
        self.checked.append(Path(raw).name)
        if Path(raw).name == self.gated and self.checked.count(self.gated) == 1:
            anyio.from_thread.run_sync(self.entered.set)
            assert self.release.wait(5), "the test never released the gate"
        return super().check(raw)


class WatchedWorkspace(Workspace):
    """A workspace that says when a tool call returned in its worker thread, and how."""

    def __init__(self, reader: FileReader) -> None:
        super().__init__(reader)
        self.returned = threading.Event()
        self.raised: BaseException | None = None

    def call(
        self, name: str, arguments: Mapping[str, Any], stop: threading.Event | None = None
    ) -> ToolAnswer:
        try:
            return super().call(name, arguments, stop)
        except BaseException as exc:
            self.raised = exc
            raise
        finally:
            self.returned.set()


async def test_cancelling_a_task_mid_search_ends_it_at_once_and_stops_the_worker_thread(
    tmp_path: Path,
) -> None:
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (tmp_path / name).write_text("a needle\n")
    reader = GatedReader(tmp_path, gated="b.txt")
    workspace = WatchedWorkspace(reader)
    uses = [ToolUse(id="toolu_1", name="search_text", raw_input='{"text": "needle"}')]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_uses, workspace, uses)
            await reader.entered.wait()
            tg.cancel_scope.cancel()
    assert not workspace.returned.is_set()  # the task is over while its worker is still held at b.txt
    reader.release.set()
    assert await anyio.to_thread.run_sync(workspace.returned.wait, 5)
    assert isinstance(workspace.raised, Stopped)
    assert "a.txt" in reader.checked and "c.txt" not in reader.checked  # it stopped at b.txt


class EntrySink:
    """A TaskSink that keeps the partial output as the registry's entry does (a restart clears it)."""

    task_id = "t-tools"

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.restarts = 0

    def response_started(self) -> None:
        pass

    def append(self, text: str) -> None:
        self.chunks.append(text)

    def restart(self, note: str, cause: ErrorKind) -> None:
        self.chunks.clear()
        self.restarts += 1

    def status(self, text: str) -> None:
        pass

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        pass

    def usage_so_far(self, model: str, tokens: Tokens) -> None:
        pass


async def test_a_retry_in_a_later_turn_keeps_the_tool_lines_and_drops_only_its_own_text(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path
) -> None:
    fake_api.config.chunk_words = 1
    settings = make_settings(roots=(root,))
    client = make_client(settings)
    backend = AnthropicBackend(
        client,
        Throttle(4),
        retry_cap_s=1,
        backoff_base_s=0.01,
        workspace=Workspace(FileReader([root], max_file_bytes=100_000)),
    )
    first = [use("read_file", path="src/app.py"), use("search_text", text="hello")]
    request = SubagentRequest(
        model="claude-sonnet-5-5",
        max_tokens=100,
        system="s",
        # every request fails once: the second turn's first attempt breaks off after two words
        prompt=f"{tools(first)} [[stream_error:after=2;count=1]] [[words:4]]",
        cache_system=False,
        tools=True,
    )
    sink = EntrySink()
    try:
        with anyio.fail_after(20):
            result = await backend.run(request, sink)
    finally:
        await client.close()
    assert result.text == "w1 w2 w3 w4"
    assert sink.restarts == 2  # one retry in each turn
    assert "".join(sink.chunks) == ("\n· read_file src/app.py\n\n· search_text 'hello' in .\nw1 w2 w3 w4")


async def test_each_tool_use_shows_in_the_partial_output_while_the_task_runs(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path
) -> None:
    task = TaskRequest(
        task=f"{tools([use('read_file', path='src/app.py')])} [[hold]] [[reply:done]]", tools=["read"]
    )
    async with api_runtime(make_settings(roots=(root,))) as runtime:
        receipt = await runtime.registry.spawn(SpawnRequest(tasks=[task]), caller=ME)
        (task_id,) = [t.task_id for t in receipt.tasks]
        await reached(fake_api, requests=1)  # the first turn waits at the fake's gate
        assert runtime.registry.snapshot(task_id, caller=ME).output is None
        fake_api.release()
        fake_api.rearm()  # the first turn goes on; the second will wait
        await reached(fake_api, requests=2)
        running = runtime.registry.snapshot(task_id, caller=ME)
        assert running.state is TaskState.RUNNING and running.partial
        assert running.output == "\n· read_file src/app.py\n"
        fake_api.release()
        with anyio.fail_after(10):
            await runtime.registry.wait([task_id])
        assert runtime.registry.snapshot(task_id, caller=ME).output == "done"


async def reached(fake: FakeApi, *, requests: int) -> None:
    """Until the fake has received ``requests`` requests and the last one waits at its gate (an earlier
    one has left the gate by then: the next request is only sent once it is answered)."""
    assert await anyio.to_thread.run_sync(fake.wait_requests, requests, 10.0), "too few requests"
    assert await anyio.to_thread.run_sync(fake.wait_held, 1, 10.0), "no request at the gate"


async def test_each_turn_reads_the_conversation_so_far_from_the_cache_through_one_breakpoint(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path
) -> None:
    task = TaskRequest(
        task=f"{tools([use('list_files')], [use('list_files')])} [[reply:done]]", tools=["read"]
    )
    async with api_runtime(make_settings(roots=(root,))) as runtime:
        (snap,) = await run_tasks(runtime, task)
    assert (snap.state, snap.output) == (TaskState.COMPLETED, "done")
    calls = [r for r in fake_api.requests if r.path == "/v1/messages"]
    marked = [
        [i for i, m in enumerate(c.body["messages"]) if "cache_control" in json.dumps(m)] for c in calls
    ]
    assert marked == [[], [2], [4]]  # the newest tool answer only, never an older one as well
    assert calls[-1].body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}


async def test_a_long_look_around_makes_the_next_turn_the_last(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fanout_mcp.server.backends.tooluse.MAX_HISTORY_CHARS", 1)
    endless = [[use("list_files")] for _ in range(5)]
    task = TaskRequest(task=f"{tools(*endless)} [[reply:what I found]]", tools=["read"])
    async with api_runtime(make_settings(roots=(root,))) as runtime:
        (snap,) = await run_tasks(runtime, task)
    assert (snap.state, snap.output) == (TaskState.COMPLETED, "what I found")
    calls = [r for r in fake_api.requests if r.path == "/v1/messages"]
    assert len(calls) == 2 and calls[-1].body["tool_choice"] == {"type": "none"}


async def test_tool_uses_past_the_answers_limit_in_one_turn_are_refused_not_run(
    fake_api: FakeApi, make_settings: MakeSettings, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fanout_mcp.server.backends.tooluse.MAX_HISTORY_CHARS", 20)
    many = [use("read_file", path="src/app.py") for _ in range(4)]  # each answer is 17 characters
    task = TaskRequest(task=f"{tools(many)} [[tool_echo]]", tools=["read"])
    async with api_runtime(make_settings(roots=(root,))) as runtime:
        (snap,) = await run_tasks(runtime, task)
    results = json.loads(snap.output or "")
    assert [r["content"] for r in results[:2]] == ["1: print('hello')"] * 2  # 17, then 34: past 20
    assert all(r["is_error"] and "reached their limit" in r["content"] for r in results[2:])
    calls = [r for r in fake_api.requests if r.path == "/v1/messages"]
    assert len(calls) == 2 and calls[-1].body["tool_choice"] == {"type": "none"}
