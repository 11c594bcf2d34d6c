"""Backends through the MCP tools: one spawn across the API, the claude CLI preset and a command of the
operator's own; cancelling CLI tasks ends their processes; unknown backends are refused."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server import Settings
from server.config.commands import PRESETS, CommandSpec
from tests.fake_api import FakeApi
from tests.server.backends import fake_clis
from tests.server.backends.fake_clis import is_gone, read_pids
from tests.tools.test_handlers import call, error
from tools import create_server

MakeSettings = Callable[..., Settings]

# Claude Code's `claude -p --output-format stream-json --verbose`, answering with the first line of its
# task: an init event, the assistant's message, then the result event with usage and cost. Like the real
# CLI, it refuses stream-json without --verbose.
FAKE_CLAUDE = """
import json, sys
args = sys.argv[1:]
if "stream-json" in args and "--verbose" not in args:
    sys.exit("Error: When using --print, --output-format=stream-json requires --verbose")
task = sys.stdin.read().split("Task", 1)[-1].strip(": \\n").splitlines()[0]
answer = f"claude did: {task}"
for event in (
    {"type": "system", "subtype": "init", "model": "claude-sonnet-4-6", "tools": ["Read", "Grep", "Glob"]},
    {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": answer}]}},
    {
        "type": "result", "subtype": "success", "is_error": False, "result": answer,
        "stop_reason": "end_turn", "total_cost_usd": 0.0123, "num_turns": 1,
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 300,
                  "output_tokens": 7},
        "modelUsage": {"claude-sonnet-4-6": {}},
    },
):
    print(json.dumps(event), flush=True)
"""


async def started(pid_file: Path, count: int) -> None:
    """Poll until ``count`` processes wrote their pids: an outside fact, with nothing else to wait on."""
    while True:
        if len(read_pids(pid_file)) >= count:
            return
        await anyio.sleep(0.05)


async def gone(pids: list[int]) -> None:
    """Poll until every pid has ended (a zombie has): an outside fact, with nothing else to wait on."""
    while True:
        if all(is_gone(pid) for pid in pids):
            return
        await anyio.sleep(0.02)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of fake CLIs, first on PATH for this test only."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return path


async def test_one_spawn_runs_on_the_api_the_claude_cli_and_a_command_of_ones_own(
    fake_api: FakeApi, make_settings: MakeSettings, bin_dir: Path
) -> None:
    fake_clis.install(bin_dir, "claude", FAKE_CLAUDE)
    mine = CommandSpec(
        argv=(sys.executable, "-c", "import sys; print('mine did:', sys.argv[1].split()[-1])", "{prompt}"),
        output="text",
    )
    settings = make_settings(commands={**PRESETS, "mine": mine})
    tasks = [
        {"task": "[[reply:the api did it]]", "backend": "anthropic", "label": "api"},
        {"task": "count the modules", "backend": "claude", "label": "claude"},
        {"task": "name the last word", "backend": "mine", "label": "mine"},
    ]
    with anyio.fail_after(30):
        async with Client(create_server(settings)) as client:
            spawned = await call(client, "spawn_parallel", tasks=tasks)
            collected = await call(client, "task_output", group_id=spawned["group_id"], wait_s=20)
    assert collected["done"], collected
    views: dict[str, Any] = {view["label"]: view for view in collected["tasks"]}
    assert {label: view["backend"] for label, view in views.items()} == {
        "api": "anthropic",
        "claude": "claude",
        "mine": "mine",
    }
    assert all(view["state"] == "completed" for view in views.values()), views
    assert views["api"]["output"] == "the api did it"
    assert views["claude"]["output"] == "claude did: count the modules"
    assert views["mine"]["output"].startswith("mine did: ")
    assert views["api"]["usage"]["output_tokens"] > 0 and views["api"]["usage"]["cost_usd"] is not None
    assert views["claude"]["model"] == "claude-sonnet-4-6"
    assert views["claude"]["usage"] == {
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_write_tokens": 0,
        "cache_read_tokens": 300,
        "cost_usd": 0.0123,
    }
    assert views["mine"]["usage"]["cost_usd"] is None  # the command says nothing of its cost: unknown


async def test_cancelling_a_group_of_running_cli_tasks_leaves_no_process_behind(
    fake_api: FakeApi, make_settings: MakeSettings, bin_dir: Path, tmp_path: Path
) -> None:
    hang = fake_clis.install(bin_dir, "hang", fake_clis.HANG)
    pid_file = tmp_path / "pids"
    pid_file.touch()
    spec = CommandSpec(argv=(str(hang), str(pid_file), "ignore-term"), grace_s=0.5)
    settings = make_settings(commands={**PRESETS, "hang": spec})
    with anyio.fail_after(30):
        async with Client(create_server(settings)) as client:
            spawned = await call(client, "spawn_parallel", tasks=[{"task": "wait", "backend": "hang"}] * 2)
            await started(pid_file, 6)  # two CLIs, each with a child and a grandchild
            cancelled = await call(client, "cancel_tasks", group_id=spawned["group_id"])
            assert sorted(cancelled["cancelled"]) == sorted(spawned["task_ids"])
            assert cancelled["counts"]["cancelled"] == 2  # ended, not only asked to end
            # Checked while the server still runs, so that it is the cancel, not the shutdown, that
            # ended them. SIGKILL has been sent to each group; the kernel ends its processes a moment
            # later. The bound: none is left 5 s after cancel_tasks.
            with anyio.fail_after(5):
                await gone(read_pids(pid_file))


async def test_an_unknown_or_unusable_backend_is_refused_naming_what_is_on_offer(
    fake_api: FakeApi, make_settings: MakeSettings, bin_dir: Path
) -> None:
    async with Client(create_server(make_settings())) as client:
        unknown = await error(client, "spawn_parallel", tasks=[{"task": "x", "backend": "bash"}])
        missing = await error(client, "spawn_parallel", tasks=[{"task": "x"}], backend="codex")
        listed = await call(client, "list_tasks")
    assert "task 1 (#1): backend 'bash' is not one this server offers" in unknown
    assert "'anthropic', 'claude', 'codex'" in unknown
    assert "the spawn's backend: backend 'codex' cannot run here" in missing
    assert "npm install -g @openai/codex" in missing
    assert listed["total"] == 0  # nothing was started
