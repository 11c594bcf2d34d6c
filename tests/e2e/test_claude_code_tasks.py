"""The real Claude Code, interactive on a terminal (where it runs MCP tool calls as tasks), offline:
``run_parallel`` moves to the background at once, and the model is told the fan-out's result when it
has ended, through the tasks extension against the installed server."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.e2e.claude import CLAUDE, INSTALL, REPO, SCRIPT, sealed_env
from tests.e2e.headless import PROJECT, calls_in, tool
from tests.fake_api import FakeApi, serve_in_thread

TASKS: Final = [
    {"label": "a", "task": "part a [[latency:2]][[reply:answer a]]"},
    {"label": "b", "task": "part b [[latency:2]][[reply:answer b]]"},
]
ANSWERED: Final = "The fan-out runs in the background."
_BOUND_S: Final = 90.0


class RunModel:
    """Plays the model: load run_parallel, call it, and answer anything after that with a text."""

    def __call__(self, body: dict[str, Any]) -> str | list[dict[str, Any]] | None:
        tools: list[dict[str, Any]] = body.get("tools") or []
        offered = {str(t.get("name")) for t in tools}
        if "ToolSearch" not in offered and not any(name.startswith(tool("")) for name in offered):
            return None  # a side request: the fake answers it as usual
        calls = calls_in(body)
        if not calls:
            return [{"name": "ToolSearch", "input": {"query": "select:" + tool("run_parallel")}}]
        if calls[-1].name == "ToolSearch":
            return [{"name": tool("run_parallel"), "input": {"tasks": TASKS, "mode": "merge"}}]
        return ANSWERED


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    server = serve_in_thread()
    try:
        yield server
    finally:
        server.stop()


def _home(home: Path, project: Path) -> None:
    """What a first interactive run would ask once: onboarding, the key, trust in the project."""
    home.mkdir()
    seen = {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "customApiKeyResponses": {"approved": ["fake"], "rejected": []},
        "projects": {str(project): {"hasTrustDialogAccepted": True}},
    }
    (home / ".claude.json").write_text(json.dumps(seen), encoding="utf-8")


def _told(fake: FakeApi) -> list[dict[str, Any]] | None:
    """The conversation of the model's request that holds the fan-out's result, once there is one."""
    for request in fake.requests:
        messages: list[dict[str, Any]] = (
            request.body.get("messages", []) if request.path == "/v1/messages" else []
        )
        if "<task-notification>" in json.dumps(messages):
            return messages
    return None


def test_claude_code_runs_run_parallel_in_the_background_and_tells_the_model_its_result(
    fake: FakeApi, tmp_path: Path
) -> None:
    assert CLAUDE.exists(), f"Claude Code is not installed for the tests: run `{INSTALL}` in {REPO}"
    fake.script = RunModel()
    project, home = tmp_path / "project", tmp_path / "home"
    shutil.copytree(PROJECT, project)
    _home(home, project)
    server = {"command": str(SCRIPT), "args": ["--root", str(project), "--store", str(tmp_path / "t.db")],
              "env": {"ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "fake"}}  # fmt: skip
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"fanout": server}}), encoding="utf-8")
    env = sealed_env(home, ANTHROPIC_BASE_URL=fake.base_url, ANTHROPIC_API_KEY="fake", TERM="xterm-256color")
    argv = [str(CLAUDE), "--mcp-config", str(tmp_path / "mcp.json"), "--strict-mcp-config",
            "--allowedTools", "mcp__fanout", "--", "Run two parts in parallel."]  # fmt: skip
    screen, told = _run_on_a_terminal(argv, env, project, fake)
    assert told is not None, screen[-3000:]
    handed = _text(told[-3])  # the tool result the model got at once
    assert "started server-side task g-" in handed and "moved to the background" in handed
    notified = _text(told[-1])  # and, once the fan-out had ended, the notification
    assert "<status>completed</status>" in notified
    result: Any = json.loads(notified.split("<result>", 1)[1].split("</result>", 1)[0])
    assert result["done"] and [t["output"] for t in result["outputs"]["tasks"]] == ["answer a", "answer b"]
    assert result["synthesis"]["mode"] == "merge"


def _text(message: dict[str, Any]) -> str:
    """A message's text, its tool results' included."""
    content: Any = message["content"]
    if isinstance(content, str):
        return content
    return "".join(_text(block) if "content" in block else str(block.get("text", "")) for block in content)


def _run_on_a_terminal(
    argv: list[str], env: dict[str, str], cwd: Path, fake: FakeApi
) -> tuple[str, list[dict[str, Any]] | None]:
    """Claude Code on a terminal until the model has been told the result (or the bound passes); what
    the terminal showed, and that conversation. The terminal is read all along: a full one blocks it."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: nothing of the test's process runs here but exec
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    shown = bytearray()
    deadline = time.monotonic() + _BOUND_S
    told = None
    try:
        while told is None and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    shown += os.read(fd, 65536)
                except OSError:
                    break
            told = _told(fake)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    return shown.decode(errors="replace"), told
