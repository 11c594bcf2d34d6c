"""Claude Code, installed for the tests from npm (tests/e2e/package.json, locked), run in a sealed home.

`npm ci --prefix tests/e2e` installs it (.ci/run does, before the tests). Every run gets a temporary
HOME, so neither the developer's logins nor their MCP servers are seen, and nothing is written outside
it; the variables below keep it from calling anything but the endpoints a test gives it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parent
REPO = E2E.parents[1]
CLAUDE = E2E / "node_modules" / ".bin" / "claude"
SCRIPT = Path(sys.executable).with_name("fanout-mcp")  #: the installed server, as a client launches it
INSTALL = "npm ci --prefix tests/e2e"
QUIET = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


def sealed_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a Claude Code run: PATH, a fresh HOME, the quiet switches and ``extra``."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), **QUIET, **extra}


def run_claude(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``claude ARGS`` in ``cwd``; fails with how to install it when it is not installed."""
    assert CLAUDE.exists(), f"Claude Code is not installed for the tests: run `{INSTALL}` in {REPO}"
    return subprocess.run(
        [str(CLAUDE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_shell(line: str, *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A README line, as written, in bash, with this Claude Code first on its PATH."""
    assert CLAUDE.exists(), f"Claude Code is not installed for the tests: run `{INSTALL}` in {REPO}"
    env = env | {"PATH": f"{CLAUDE.parent}{os.pathsep}{env['PATH']}"}
    return subprocess.run(
        ["bash", "-c", line], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
