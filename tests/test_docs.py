"""The documentation matches the code: every option is in the README, the README's test commands are the
ones CI runs, and mcp.json and every client snippet are entries a client can launch as written."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from server import OPTIONS
from server import __all__ as server_names
from tools import __all__ as tools_names

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_option_is_documented_in_the_readme() -> None:
    for name, option in OPTIONS.items():
        assert (f"`{option.flag}`" if option.switch else f"`{option.flag} {option.metavar}`") in README
        key = "-" if name == "config_file" else f"`{name}`"
        assert f"| `{option.env}` | {key} |" in README


def test_ci_runs_exactly_the_readmes_test_commands_in_order() -> None:
    match = re.search(r"# install with the test dependencies.*\n((?:.+\n)+?)```", README)
    assert match is not None
    commands = match.group(1).strip().splitlines()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[0] in ci
    start = ci.index(commands[0])
    assert ci[start : start + len(commands)] == commands
    assert commands[-1].endswith(".venv/bin/python -m pytest")


def test_every_install_command_in_the_readme_uses_the_lock() -> None:
    installs = re.findall(r"pip install [^\n]*-e [^\n]*", README)
    assert len(installs) >= 3
    assert all("-c requirements.lock" in command for command in installs), installs


def test_the_lock_pins_every_dependency_inside_its_range() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(r) for r in pyproject["dependencies"]]
    wanted += [Requirement(r) for extra in pyproject["optional-dependencies"].values() for r in extra]
    pinned: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if match := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line):
            pinned[canonicalize_name(match.group(1))] = match.group(2)
    for requirement in wanted:
        if canonicalize_name(requirement.name) == "fanout-mcp":  # an extra naming another extra
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in requirements.lock: run .ci/lock"
        assert requirement.specifier.contains(version), f"{requirement} but the lock has {version}"


def test_mcp_json_is_a_project_entry_that_runs_the_clones_console_script() -> None:
    config = json.loads((REPO / "mcp.json").read_text(encoding="utf-8"))
    entry = config["mcpServers"]["fanout"]
    assert entry["command"] == ".venv/bin/fanout-mcp"  # where the README's set-up installs it
    assert entry["args"] == []
    assert entry["env"] == {"ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}"}
    assert "python3 -m venv .venv &&" in README
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'fanout-mcp = "fanout_mcp.tools.cli.main:main"' in pyproject


def section(title: str) -> str:
    """The README's section under ``## title``, up to the next one."""
    start = README.index(f"\n## {title}\n")
    return README[start : README.index("\n## ", start + 1)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def launches_the_server(entry: dict[str, Any]) -> None:
    """A client entry that a client can start as written: an absolute command (a client does not see a
    virtual environment on its PATH) or a launcher, argument strings, and the key in its environment."""
    command, args = entry["command"], entry["args"]
    assert (command.startswith("/") and command.endswith("/.venv/bin/fanout-mcp")) or command in LAUNCHERS
    assert isinstance(args, list) and all(isinstance(a, str) for a in cast(list[Any], args))
    assert set(entry["env"]) == {"ANTHROPIC_API_KEY"} and isinstance(entry["env"]["ANTHROPIC_API_KEY"], str)


LAUNCHERS = ("uvx", "pipx")


def test_every_json_client_snippet_parses_and_launches_the_server_by_an_absolute_path() -> None:
    snippets = [json.loads(block) for block in blocks(section("Connect a client"), "json")]
    entries = [s["mcpServers"]["fanout"] if "mcpServers" in s else s["servers"]["fanout"] for s in snippets]

    assert len(entries) == 2  # Claude Desktop (and Cursor, the same entry), VS Code
    for entry in entries:
        launches_the_server(entry)
    assert entries[1]["type"] == "stdio"


def test_the_codex_snippet_is_toml_that_launches_the_server_by_an_absolute_path() -> None:
    (block,) = blocks(section("Connect a client"), "toml")
    entry = tomllib.loads(block)["mcp_servers"]["fanout"]

    launches_the_server(entry)
    assert entry["tool_timeout_sec"] > 50  # task_output waits up to 50 s


def test_every_client_command_in_the_readme_names_the_server_first_then_options_then_the_command() -> None:
    adds = re.findall(r"claude mcp add [^\n`]*", README)
    assert adds
    for add in adds:
        assert re.match(r'claude mcp add fanout (-\S+ (?:"[^"]*"|\S+) )*-- \S', add), add


def test_the_public_surfaces_are_pinned() -> None:
    import server as server

    assert server_names == [
        "OPTIONS",
        "TERMINAL_STATES",
        "Action",
        "Backend",
        "BackendUnavailable",
        "Caller",
        "CancelOutcome",
        "Conflict",
        "ConflictSide",
        "Counts",
        "ErrorKind",
        "FanoutError",
        "GroupSummary",
        "InvalidInput",
        "LimitReached",
        "Location",
        "MergedFinding",
        "Missing",
        "Option",
        "Quorum",
        "RegistryClosed",
        "RetryNotice",
        "RetryReceipt",
        "Runtime",
        "Settings",
        "SettingsError",
        "Source",
        "SpawnReceipt",
        "SpawnRequest",
        "Statistics",
        "SubagentRequest",
        "SubagentResult",
        "Synthesis",
        "Synthesizer",
        "TaskError",
        "TaskFailure",
        "TaskRegistry",
        "TaskRequest",
        "TaskSink",
        "TaskSnapshot",
        "TaskState",
        "Tokens",
        "UnknownTask",
        "Usage",
        "fair_shares",
        "load_settings",
        "open_registry",
        "open_runtime",
    ]
    assert all(hasattr(server, name) for name in server_names)
    assert tools_names == ["create_server", "register"]


def test_the_engine_never_imports_the_mcp_layer() -> None:
    for path in (REPO / "server").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        depth = len(path.relative_to(REPO / "server").parts)  # one dot fewer than reach the tree's root
        to_tools = rf"^\s*from \.{{{depth + 1}}}tools\b|^\s*(from|import) (fanout_mcp\.)?tools\b"
        assert not re.search(to_tools, source, re.MULTILINE), path
        assert not re.search(r"^\s*(from|import) mcp\b", source, re.MULTILINE), path


def test_the_code_imports_itself_by_relative_imports_that_a_static_tool_can_follow() -> None:
    for path in [*(REPO / "server").rglob("*.py"), *(REPO / "tools").rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) fanout_mcp\b", source, re.MULTILINE), path


def test_every_package_of_the_source_tree_is_in_the_distribution() -> None:
    packages = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(packages["packages"])
    found = {
        "fanout_mcp." + ".".join(init.parent.relative_to(REPO).parts)
        for top in ("server", "tools")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert found == listed


def fake_demos() -> list[str]:
    """The README's shell blocks that run something against the test suite's fake Messages API."""
    return [block for block in blocks(README, "bash") if "tests/fake_api.py" in block]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("block", fake_demos(), ids=lambda block: block.splitlines()[0][:40])
def test_each_fake_demo_in_the_readme_ends_with_merged_findings_and_exit_0(
    block: str, tmp_path: Path
) -> None:
    # As written, but with this interpreter's virtual environment and, where a port is named, a free one
    # (another run may hold the README's); background jobs end with the script.
    script = block.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    for port in set(re.findall(r"--port (\d+)", block)):
        script = script.replace(port, str(free_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")} | {"HOME": str(tmp_path)}

    done = subprocess.run(
        ["bash", "-c", f"trap 'kill $(jobs -p) 2>/dev/null' EXIT\n{script}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    synthesis = done.stdout[done.stdout.index("# Synthesis (llm)") :]
    assert "## Findings" in synthesis and "## Conflicts" in synthesis and "## Actions" in synthesis
    assert max(int(n) for n in re.findall(r"\((\d+) tasks\)", synthesis)) >= 2  # merged across tasks
    assert "invalid_output" not in done.stdout and "## Missing" not in synthesis


def test_the_readme_shows_the_offline_demo_in_set_up() -> None:
    assert [demo for demo in fake_demos() if demo in section("Set up")]


def test_the_remote_client_snippets_parse_and_reach_the_served_endpoint_with_a_token() -> None:
    remote = section("Remote use")
    cursor, vscode = (json.loads(block) for block in blocks(remote, "json"))
    (codex,) = (tomllib.loads(block)["mcp_servers"]["fanout"] for block in blocks(remote, "toml"))
    entries = [cursor["mcpServers"]["fanout"], vscode["servers"]["fanout"], codex]

    assert {entry["url"] for entry in entries} == {"http://127.0.0.1:8765/mcp"}
    assert cursor["mcpServers"]["fanout"]["headers"]["Authorization"].startswith("Bearer ")
    assert vscode["servers"]["fanout"]["type"] == "http"
    assert codex["bearer_token_env_var"] == "FANOUT_TOKEN" and codex["tool_timeout_sec"] > 50
