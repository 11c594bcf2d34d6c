"""Claude Code driven headless and offline through a whole fan-out: what the calling model sees.

`claude -p` runs with ANTHROPIC_BASE_URL pointed at the fake Messages API (tests/fake_api.py), whose
`script` plays Claude Code's model (`FanoutModel`): it loads the fanout tools with ToolSearch (Claude
Code defers MCP tools), calls `spawn_parallel`, `task_output` until the group is done, `synthesize`
until the synthesis is done, and ends with a text. The fanout server, configured with `--mcp-config`,
runs its subagents on the same fake, which answers them with findings (tests/fake_answers.py). The fake
records every request, so the tool results Claude Code sent back are what the model saw.

As a dev tool, `python -m tests.e2e.headless` runs the flow once and prints what the model saw.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from tests.e2e.claude import REPO, SCRIPT, run_claude, sealed_env
from tests.fake_api import FakeApi, serve_in_thread

SERVER: Final = "fanout"
TOOLS: Final = ("spawn_parallel", "task_output", "synthesize")
PROJECT: Final = REPO / "tests" / "fixtures" / "shop"
TASKS: Final = [
    {"label": "security", "role": "application security", "task": "Review for security problems.",
     "files": ["app/auth.py", "db/users.py"]},
    {"label": "performance", "role": "performance", "task": "Review for performance problems.",
     "files": ["app/cache.py", "db/users.py"]},
    {"label": "testing", "role": "test engineering", "task": "Review what is hard to test.",
     "files": ["app/cache.py", "web/views.py"]},
]  # fmt: skip
PROMPT: Final = "Review this project from three perspectives in parallel with the fanout tools, then merge."
FINAL: Final = "The review is done."
_MAX_POLLS: Final = 5  # task_output / synthesize calls before the model gives up waiting
_GROUP_ID: Final = re.compile(r'"group_id"\s*:\s*"([^"]+)"|\b(g-[\w-]+)')
_DONE: Final = re.compile(r'"done"\s*:\s*(true|false)')


def tool(name: str) -> str:
    """The name Claude Code gives a fanout tool."""
    return f"mcp__{SERVER}__{name}"


@dataclass(frozen=True)
class Call:
    """One tool call of the model, and the tool_result block Claude Code answered it with."""

    name: str
    input: dict[str, Any]
    result: dict[str, Any] | None

    @property
    def text(self) -> str:
        """The result's text, whatever its blocks."""
        content: Any = (self.result or {}).get("content")
        if isinstance(content, str):
            return content
        blocks = cast(list[Any], content) if isinstance(content, list) else []
        shown = (cast(dict[str, Any], b) for b in blocks if isinstance(b, dict))
        return "\n".join(str(b.get("text", json.dumps(b))) for b in shown)


def calls_in(body: dict[str, Any]) -> list[Call]:
    """The model's tool calls so far in a request's conversation, each with its result."""
    used: list[dict[str, Any]] = []
    results: dict[str, dict[str, Any]] = {}
    for message in cast(list[dict[str, Any]], body.get("messages", [])):
        content: Any = message.get("content")
        for block in cast(list[Any], content) if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            fields = cast(dict[str, Any], block)
            if fields.get("type") == "tool_use":
                used.append(fields)
            elif fields.get("type") == "tool_result":
                results[str(fields.get("tool_use_id"))] = fields
    return [Call(str(u["name"]), dict(u.get("input") or {}), results.get(str(u["id"]))) for u in used]


class FanoutModel:
    """Plays Claude Code's model (a `FakeApi.script`): one fan-out, start to end, decided from the
    conversation in each request (so a repeated request gets the same answer)."""

    @staticmethod
    def plays(body: dict[str, Any]) -> bool:
        """Whether a request is the session's main loop (it offers the tools), not a side request."""
        offered = {str(t.get("name")) for t in cast(list[dict[str, Any]], body.get("tools") or [])}
        return "ToolSearch" in offered or any(name.startswith(tool("")) for name in offered)

    def __call__(self, body: dict[str, Any]) -> str | list[dict[str, Any]] | None:
        if not self.plays(body):
            return None  # the fake answers a side request as usual
        calls = calls_in(body)
        if not calls:
            return [{"name": "ToolSearch", "input": {"query": "select:" + ",".join(map(tool, TOOLS))}}]
        last = calls[-1]
        if last.result is not None and last.result.get("is_error"):
            return f"Stopped: {last.name} failed: {last.text[:500]}"
        group = next((_group_id(c.text) for c in calls if c.name == tool("spawn_parallel")), None)
        polls = sum(1 for c in calls if c.name == last.name)
        if last.name == "ToolSearch":
            return [{"name": tool("spawn_parallel"), "input": {"tasks": TASKS, "output_schema": "findings"}}]
        if group is None:
            return f"Stopped: no group_id in the answer of {last.name}: {last.text[:500]}"
        if last.name == tool("spawn_parallel") or (
            last.name == tool("task_output") and _done(last.text) is False and polls < _MAX_POLLS
        ):
            return [{"name": tool("task_output"), "input": {"group_id": group, "wait_s": 30}}]
        if last.name == tool("task_output") or (
            last.name == tool("synthesize") and _done(last.text) is False and polls < _MAX_POLLS
        ):
            return [{"name": tool("synthesize"), "input": {"group_id": group, "wait_s": 30}}]
        return FINAL


def _group_id(text: str) -> str | None:
    found = _GROUP_ID.search(text)
    return (found.group(1) or found.group(2)) if found else None


def _done(text: str) -> bool | None:
    """Whether an answer says its tasks are done; None when it does not say (then: taken as done)."""
    found = _DONE.search(text)
    return None if found is None else found.group(1) == "true"


@dataclass(frozen=True)
class Flow:
    """What one headless session did: Claude Code's exit, its final result, and every tool call."""

    returncode: int
    result: str
    calls: list[Call]
    stderr: str


def drive(fake: FakeApi, workdir: Path) -> Flow:
    """Run the whole fan-out through `claude -p` once, against ``fake`` (which it scripts)."""
    fake.script = FanoutModel()
    project = workdir / "project"
    shutil.copytree(PROJECT, project)
    server = {"command": str(SCRIPT), "args": ["--root", str(project)],
              "env": {"ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "fake"}}  # fmt: skip
    config = workdir / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {SERVER: server}}), encoding="utf-8")
    env = sealed_env(workdir / "home", ANTHROPIC_BASE_URL=fake.base_url, ANTHROPIC_API_KEY="fake")
    args = ["-p", PROMPT, "--output-format", "json", "--mcp-config", str(config), "--strict-mcp-config",
            "--allowedTools", f"mcp__{SERVER}"]  # fmt: skip
    done = run_claude(args, env=env, cwd=project)
    main = [r.body for r in fake.requests if r.path == "/v1/messages" and FanoutModel.plays(r.body)]
    calls = calls_in(main[-1]) if main else []
    try:
        result = str(json.loads(done.stdout).get("result", ""))
    except ValueError:
        result = done.stdout
    return Flow(done.returncode, result, calls, done.stderr)


def report(flow: Flow, width: int = 1500) -> str:
    """What the model saw: each call, and the tool_result block Claude Code sent back (trimmed)."""
    lines = [f"claude exit {flow.returncode}; final result: {flow.result!r}"]
    for number, call in enumerate(flow.calls, 1):
        block = json.dumps(call.result, indent=1) if call.result is not None else "(no result)"
        cut = f"\n... ({len(block)} characters)" if len(block) > width else ""
        lines += [f"\n#{number} {call.name} {json.dumps(call.input)[:300]}", block[:width] + cut]
    return "\n".join(lines)


def main() -> int:
    fake = serve_in_thread()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            flow = drive(fake, Path(workdir))
    finally:
        fake.stop()
    print(report(flow))
    return 0 if flow.returncode == 0 and flow.result == FINAL else 1


if __name__ == "__main__":
    sys.exit(main())
