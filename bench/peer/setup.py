"""Create bench/peer/.venv with the pinned mcp-agent stack; print the venv's python.

    python3 bench/peer/setup.py          # any Python 3.11+; idempotent, ~1 s when already installed

mcp-agent 0.2.6 does not work with mcp 2.x (imports mcp.server.fastmcp) nor with anthropic 2.x
(MessageParam is a Union there), hence the pins. Exits 1 with a one-line reason on failure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
PY = VENV / "bin" / "python"
PINS = ["mcp-agent[anthropic]==0.2.6", "mcp<2", "anthropic<2"]
# Checked in the venv: the pins hold and the modules the client uses import.
CHECK = (
    "import importlib.metadata as m, sys\n"
    "v = {p: m.version(p) for p in ('mcp-agent', 'mcp', 'anthropic')}\n"
    "assert v['mcp-agent'] == '0.2.6' and int(v['mcp'].split('.')[0]) < 2 "
    "and int(v['anthropic'].split('.')[0]) < 2, v\n"
    "import mcp_agent.app, mcp_agent.workflows.parallel.parallel_llm, "
    "mcp_agent.workflows.llm.augmented_llm_anthropic\n"
    "print(' '.join(f'{k}=={x}' for k, x in v.items()))\n"
)


def fail(reason: str) -> None:
    print(f"setup.py: {reason}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        fail(f"{what} failed: {tail[-1] if tail else f'exit {proc.returncode}'}")
    return proc.stdout


def installed() -> str | None:
    if not PY.exists():
        return None
    proc = subprocess.run([str(PY), "-c", CHECK], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def main() -> None:
    if installed() is None:
        if VENV.exists():
            probe = (
                subprocess.run([str(PY), "-c", "import pip"], capture_output=True) if PY.exists() else None
            )
            if probe is None or probe.returncode != 0:
                shutil.rmtree(VENV)  # broken venv: start again
        if not VENV.exists():
            try:
                venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
            except Exception as exc:
                fail(f"could not create {VENV}: {exc}")
        run(
            [str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
            "pip install " + " ".join(PINS),
        )
        versions = installed()
        if versions is None:
            proc = subprocess.run([str(PY), "-c", CHECK], capture_output=True, text=True)
            tail = proc.stderr.strip().splitlines()
            fail(f"installed, but the check failed: {tail[-1] if tail else 'unknown error'}")
        print(f"installed {versions}", file=sys.stderr)
    print(PY)


if __name__ == "__main__":
    main()
