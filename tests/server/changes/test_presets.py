"""The claude and codex presets as edit tasks: each runs in its own worktree with the flags that confine
it there, and what it wrote is its change set (fake CLIs that speak the real output formats)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server import Settings, TaskRequest, TaskState
from server.backends.cli import CommandBackend
from server.backends.roster import Roster
from server.config.commands import command_from_config
from server.core.registry import TaskRegistry, open_registry
from tests.server.backends.fake_clis import install
from tests.server.changes.checks_kit import committed, one_edit

pytestmark = pytest.mark.anyio

# Both record how they were started (argv, working directory) in FAKE_RECORD, write one file in their
# working directory, and answer in their CLI's JSON events.
RECORDS = """
import json, os, sys
prompt = sys.stdin.read()
with open(os.environ["FAKE_RECORD"], "w") as record:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "told": prompt}, record)
NAME = os.path.basename(sys.argv[0])
with open(f"from_{NAME}.py", "w") as out:
    out.write(f"WRITTEN_BY = {NAME!r}\\n")
"""
CLAUDE_EDITS = (
    RECORDS
    + """
def say(event):
    print(json.dumps({**event, "session_id": "5f0c1d2e"}), flush=True)
say({"type": "system", "subtype": "init", "cwd": os.getcwd(), "model": "claude-sonnet-4-6", "tools": []})
say({"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "Wrote it."}]}})
say({"type": "result", "subtype": "success", "is_error": False, "result": "Wrote it.", "stop_reason": "end_turn",
     "total_cost_usd": 0.001, "usage": {"input_tokens": 3, "output_tokens": 2}})
"""
)
CODEX_EDITS = (
    RECORDS
    + """
for event in [
    {"type": "thread.started", "thread_id": "0199a213"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": "Wrote it."}},
    {"type": "turn.completed", "usage": {"input_tokens": 3, "cached_input_tokens": 0, "output_tokens": 2}},
]:
    print(json.dumps(event), flush=True)
"""
)


@pytest.fixture
async def agents(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TaskRegistry]:
    bin_dir = tmp_path / "agents"
    bin_dir.mkdir()
    install(bin_dir, "claude", CLAUDE_EDITS)
    install(bin_dir, "codex", CODEX_EDITS)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    settings = Settings(roots=(repo,))
    backends = {
        name: CommandBackend(
            name,
            command_from_config(name, {"env": {"FAKE_RECORD": str(tmp_path / f"{name}.json")}}),
            settings.roots,
        )
        for name in ("claude", "codex")
    }
    async with open_registry(settings, Roster(dict(backends), default="claude")) as registry:
        yield registry


@pytest.mark.parametrize("agent", ["claude", "codex"])
async def test_a_preset_edits_in_its_own_worktree_and_its_writes_are_its_change_set(
    agents: TaskRegistry, repo: Path, tmp_path: Path, agent: str
) -> None:
    group, task_id = await one_edit(agents, TaskRequest(task="Add a module.", backend=agent))

    [snap] = agents.snapshots([task_id])
    assert snap.state is TaskState.COMPLETED and snap.output == "Wrote it."
    seen = json.loads((tmp_path / f"{agent}.json").read_text())
    worktree = Path(seen["cwd"])
    assert task_id in worktree.parts and not worktree.is_relative_to(repo)  # never the user's checkout
    assert "Do not run git commands" in seen["told"]
    assert f"from_{agent}.py" in committed(repo, f"refs/fanout/{group}/{task_id}")
    assert not (repo / f"from_{agent}.py").exists()


async def test_claude_may_read_and_change_files_and_nothing_else(
    agents: TaskRegistry, tmp_path: Path
) -> None:
    await one_edit(agents, TaskRequest(task="Add a module.", backend="claude"))

    argv = json.loads((tmp_path / "claude.json").read_text())["argv"]
    assert argv[argv.index("--tools") + 1] == "Read,Edit,Write,Glob,Grep"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Edit,Write,Glob,Grep"
    assert "Bash" in argv[argv.index("--disallowedTools") + 1].split(",")  # no shell, so no git
    assert argv[argv.index("--permission-mode") + 1] == "dontAsk"
    assert "--add-dir" not in argv


async def test_codex_writes_only_in_its_workspace_with_the_network_off(
    agents: TaskRegistry, tmp_path: Path
) -> None:
    await one_edit(agents, TaskRequest(task="Add a module.", backend="codex"))

    argv = json.loads((tmp_path / "codex.json").read_text())["argv"]
    assert argv[argv.index("--sandbox") + 1] == "workspace-write"
    assert "sandbox_workspace_write.network_access=false" in argv
