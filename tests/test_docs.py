"""The documentation matches the code: every option is in the README, the README's test command is the
one CI runs, and mcp.json is a valid client entry that launches the installed command."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fanout_mcp.server import OPTIONS
from fanout_mcp.server import __all__ as server_names
from fanout_mcp.tools import __all__ as tools_names

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_option_is_documented_in_the_readme() -> None:
    for name, option in OPTIONS.items():
        assert f"`{option.flag} {option.metavar}`" in README
        key = "-" if name == "config_file" else f"`{name}`"
        assert f"| `{option.env}` | {key} |" in README


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    match = re.search(r"# install with the test dependencies.*\n(.+)\n```", README)
    assert match is not None
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert match.group(1).strip() in ci.splitlines()


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


def test_mcp_json_is_a_client_entry_that_runs_the_console_script() -> None:
    config = json.loads((REPO / "mcp.json").read_text(encoding="utf-8"))
    entry = config["mcpServers"]["fanout"]
    assert entry["command"] == "fanout-mcp"
    assert isinstance(entry["args"], list)
    assert set(entry["env"]) == {"ANTHROPIC_API_KEY"}
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'fanout-mcp = "fanout_mcp.tools.cli:main"' in pyproject


def test_the_public_surfaces_are_pinned() -> None:
    import fanout_mcp.server as server

    assert server_names == [
        "OPTIONS",
        "TERMINAL_STATES",
        "Action",
        "Backend",
        "BackendUnavailable",
        "CancelOutcome",
        "Conflict",
        "ConflictSide",
        "Counts",
        "ErrorKind",
        "FanoutError",
        "GroupSummary",
        "InvalidInput",
        "Location",
        "MergedFinding",
        "Missing",
        "Option",
        "Quorum",
        "RegistryClosed",
        "RetryNotice",
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
        assert not re.search(r"^\s*(from|import) fanout_mcp\.tools\b", source, re.MULTILINE), path
        assert not re.search(r"^\s*(from|import) mcp\b", source, re.MULTILINE), path
