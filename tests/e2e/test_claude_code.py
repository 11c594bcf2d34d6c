"""Claude Code, the real CLI (tests/e2e/claude.py), with the server as the README connects it, offline.

The README's `claude mcp add` line, run as written in a directory laid out as a clone, and `cp mcp.json
.mcp.json` both leave a server that `claude mcp get` reports connected, and so does its remote line
against `fanout-mcp serve` with a bearer token; and a whole fan-out driven
headless through `claude -p` (tests/e2e/headless.py) completes. What the model saw is printed (run with
`-s` to read it), not pinned: the tool results' shapes are the server's to change.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.claude import REPO, SCRIPT, run_claude, run_shell, sealed_env
from tests.e2e.headless import FINAL, TOOLS, drive, report, tool
from tests.fake_api import FakeApi, serve_in_thread
from tools.http.tokens import add_token

README = (REPO / "README.md").read_text(encoding="utf-8")
CONNECTED = "Status: ✔ Connected"


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    return README[start : README.index("\n## ", start + 1)]


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    server = serve_in_thread()
    try:
        yield server
    finally:
        server.stop()


def clone(tmp_path: Path) -> Path:
    """A directory laid out as the README's set-up leaves a clone: its server in .venv/bin."""
    project = tmp_path / "clone"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "fanout-mcp").symlink_to(SCRIPT)
    return project


def test_the_readmes_claude_mcp_add_line_run_as_written_leaves_a_connected_server(tmp_path: Path) -> None:
    lines = re.findall(r"^claude mcp (?:add|get) .*$", section("Connect a client"), re.MULTILINE)
    assert [line.split()[2] for line in lines] == ["add", "get"]
    project, elsewhere = clone(tmp_path), tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = sealed_env(tmp_path / "home")

    added = run_shell(lines[0], env=env, cwd=project)
    got = run_shell(lines[1], env=env, cwd=elsewhere)  # -s user: every project sees it

    assert added.returncode == 0, added.stdout + added.stderr
    assert CONNECTED in got.stdout, got.stdout + got.stderr
    config = json.loads((tmp_path / "home" / ".claude.json").read_text(encoding="utf-8"))
    assert config["mcpServers"]["fanout"]["command"] == str(project / ".venv" / "bin" / "fanout-mcp")


def test_mcp_json_as_a_projects_mcp_json_gives_a_connected_server(tmp_path: Path) -> None:
    assert "`cp mcp.json .mcp.json`" in section("Connect a client")
    project = clone(tmp_path)
    shutil.copy(REPO / "mcp.json", project / ".mcp.json")
    home = tmp_path / "home"
    env = sealed_env(home)  # no key: with one, Claude Code would try to reach the real API first
    (home / ".claude").mkdir()
    # The approval Claude Code asks for once, interactively, for a project's servers.
    (home / ".claude" / "settings.json").write_text('{"enableAllProjectMcpServers": true}', encoding="utf-8")

    got = run_claude(["mcp", "get", "fanout"], env=env, cwd=project)

    assert CONNECTED in got.stdout, got.stdout + got.stderr
    assert "Scope: Project config" in got.stdout


def test_claude_code_headless_runs_a_whole_fan_out_offline(fake: FakeApi, tmp_path: Path) -> None:
    flow = drive(fake, tmp_path)
    print(report(flow))  # what the model saw: pytest -s shows it

    assert flow.returncode == 0, flow.stderr[-3000:]
    assert flow.result == FINAL, report(flow)
    names = [call.name for call in flow.calls]
    assert names[:3] == ["ToolSearch", tool("spawn_parallel"), tool("task_output")]
    assert names[-1] == tool("synthesize") and set(names[1:]) == {tool(name) for name in TOOLS}
    assert all(call.result is not None and not call.result.get("is_error") for call in flow.calls)
    spawned, synthesized = flow.calls[1].text, flow.calls[-1].text
    task_ids = set(re.findall(r"(?<![\w-])t-[\w-]{16}(?![\w-])", spawned))
    assert len(task_ids) == 3
    assert task_ids <= set(
        re.findall(r"(?<![\w-])t-[\w-]{16}(?![\w-])", synthesized)
    )  # the merge reached the model


def test_the_readmes_remote_claude_mcp_add_line_leaves_a_connected_http_server(
    fake: FakeApi, tmp_path: Path
) -> None:
    lines = re.findall(r"^claude mcp (?:add|get) .*$", section("Remote use"), re.MULTILINE)
    assert [line.split()[2] for line in lines] == ["add", "get"]
    tokens = tmp_path / "tokens"
    token = add_token(tokens, "alice")
    env = sealed_env(tmp_path / "home", FANOUT_TOKEN=token)
    server_env = {**env, "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "test-key"}
    argv = [str(SCRIPT), "serve", "--port", "0", "--auth-tokens", str(tokens)]
    with subprocess.Popen(argv, env=server_env, stderr=subprocess.PIPE, text=True) as server:
        try:
            assert server.stderr is not None
            announced = re.search(r"serving MCP at (http://\S+)", server.stderr.readline())
            assert announced is not None
            # As written, with the port this test's server got.
            added = run_shell(
                lines[0].replace("http://127.0.0.1:8765/mcp", announced.group(1)), env=env, cwd=tmp_path
            )
            got = run_shell(lines[1], env=env, cwd=tmp_path)
        finally:
            server.terminate()
            server.wait(timeout=30)

    assert added.returncode == 0, added.stdout + added.stderr
    assert CONNECTED in got.stdout and "Type: http" in got.stdout, got.stdout + got.stderr
    assert server.returncode == 0
