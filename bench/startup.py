"""Start-up: how soon a freshly started ``fanout-mcp`` answers, each measured in a new process.

version     ``fanout-mcp --version`` to its exit                                    target 0.3 s
help        ``fanout-mcp --help`` to its exit                                       target 0.3 s
initialize  process start to the answer of ``initialize`` (protocol 2025-11-25)     target 1 s
discover    process start to the answer of ``server/discover`` (protocol 2026-07-28) target 1 s
tools/list  process start to the answer of ``tools/list`` after ``initialize``     no target: the
            handshake is answered before the MCP SDK is loaded (tools/stdio/greeter.py), tools/list once it is

The request is written as soon as the process exists: a client does the same, and the time is what it
waits. Also prints the largest imports (``python -X importtime``) of the --version path and of the
server up to its answer.

    .venv/bin/python bench/startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRIPT, log, median, rotations, spread, table

TARGETS: Final[dict[str, float | None]] = {
    "version": 0.3,
    "help": 0.3,
    "initialize": 1.0,
    "discover": 1.0,
    "tools/list": None,
}
_CLIENT: Final = {"name": "bench", "version": "1"}
REQUESTS: Final[dict[str, dict[str, Any]]] = {
    "initialize": {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": _CLIENT},
    },
    "discover": {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": _CLIENT,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    },
}


FOLLOW_UP: Final = (
    b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n'
    b'{"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}\n'
)


def environment(**more: str) -> dict[str, str]:
    # A placeholder key: the API backend counts as configured, as on a user's machine; nothing is called.
    base = {k: os.environ[k] for k in ("HOME", "PATH") if k in os.environ}
    return {**base, "ANTHROPIC_API_KEY": "bench-key", **more}


def time_command(flag: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(SCRIPT), flag], env=environment(), capture_output=True, timeout=60, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"fanout-mcp {flag} failed: {done.stderr.decode()[-2000:]}")
    return elapsed


def time_answer(kind: str, **env: str) -> tuple[float, str]:
    """Seconds from starting the server to its answer of ``kind``'s request (``tools/list``: of the
    tools/list that follows the initialize); and its stderr."""
    # stderr to a file: a pipe nobody reads until the answer could fill up and stall the server
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(SCRIPT)],
            env=environment(**env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(
            json.dumps(REQUESTS["initialize" if kind == "tools/list" else kind]).encode() + b"\n"
        )
        if kind == "tools/list":
            process.stdin.write(FOLLOW_UP)
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        if kind == "tools/list":
            answer = json.loads(process.stdout.readline())
        elapsed = time.perf_counter() - started
        process.communicate(timeout=60)  # closes stdin, which stops the server
        stderr.seek(0)
        logged = stderr.read().decode(errors="replace")
    if "result" not in answer:
        raise RuntimeError(f"{kind}: not answered: {answer}\n{logged[-2000:]}")
    return elapsed, logged


def measure(kind: str) -> float:
    return time_command(f"--{kind}") if kind in ("version", "help") else time_answer(kind)[0]


def top_imports(stderr: str, count: int = 6) -> list[tuple[str, float]]:
    """The packages whose import took longest, in seconds: each one's outermost import, which includes
    what it imported in turn (so ``mcp`` includes ``pydantic``, and ``fanout_mcp`` all of them)."""
    packages: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        package = name.strip().split(".")[0]
        packages[package] = max(packages.get(package, 0.0), int(cumulative) / 1e6)
    return sorted(packages.items(), key=lambda t: -t[1])[:count]


def import_profiles() -> dict[str, list[tuple[str, float]]]:
    version = subprocess.run(
        [str(SCRIPT), "--version"], env=environment(PYTHONPROFILEIMPORTTIME="1"), capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    _, served = time_answer("initialize", PYTHONPROFILEIMPORTTIME="1")
    return {"--version": top_imports(version.stderr), "serve": top_imports(served)}


def verdict(runs: list[float], target: float | None) -> list[str]:
    if target is None:
        return ["-", "-"]
    return [f"{target:g}", "met" if median(runs) <= target else "not met"]


def scenario(rounds: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {kind: [] for kind in TARGETS}
    for round_no, order in rotations(list(TARGETS), rounds):
        for kind in order:
            runs[kind].append(measure(kind))
        log(f"startup round {round_no + 1}/{rounds}: " + ", ".join(f"{k} {runs[k][-1]:.3f}" for k in TARGETS))
    profiles = import_profiles()
    rows = [
        [kind, len(runs[kind]), spread(runs[kind]), *verdict(runs[kind], TARGETS[kind])] for kind in TARGETS
    ]
    imports = [
        [path, ", ".join(f"{name} {seconds:.3f}" for name, seconds in tops)]
        for path, tops in profiles.items()
    ]
    markdown = (
        table(["measure", "runs", "s median [min-max]", "target s", "target"], rows)
        + "\n\nSlowest imports by package (python -X importtime, cumulative s, the profiler's own cost included):\n\n"
        + table(["path", "imports"], imports)
    )
    return {"runs": runs, "imports": profiles, "markdown": markdown}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(scenario(args.rounds)["markdown"])


if __name__ == "__main__":
    main()
