"""Scenario: scale, defaults and the cost of one look (issue 12's targets).

tenk      N tasks (10,000 in the full run) in ONE spawn_parallel over stdio, L = 1 s, limits raised by flags
          (--max-tasks, --max-unfinished; concurrency stays at its default): every output fetched and checked,
          CPU per task (server + client, from the processes' own accounting) and the server's peak resident
          memory (VmHWM, read from /proc before it exits)
defaults  100 tasks, L = 1 s, the server started with no flags at all: wall time from spawn_parallel to the
          last output fetched, every output checked
rtt       task_output of one finished task against a trivial tool (echo, on the smallest MCPServer the SDK
          builds: bench/trivial_server.py), both over stdio in the same run, calls interleaved; medians

    .venv/bin/python bench/scale.py                  # the full sizes
    .venv/bin/python bench/scale.py --tenk 2000      # a smaller "tenk"
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    PYTHON,
    SCRIPT,
    Fake,
    add_contender_flags,
    log,
    ran_contender,
    ready,
    run_contender,
    server_env,
    table,
)
from fanout import EXPECTED, over_stdio, task_text

TRIVIAL_SERVER = Path(__file__).resolve().parent / "trivial_server.py"
RTT_CALLS = 300
DEFAULT_TASKS = 100


async def run_tenk(n: int) -> dict[str, Any]:
    return await over_stdio(["--max-tasks", str(n), "--max-unfinished", str(n)], n)


async def run_defaults(n: int) -> dict[str, Any]:
    return await over_stdio([], n)


async def run_rtt(calls: int) -> dict[str, Any]:
    """Median round trips, in ms: task_output of one finished task, and a trivial tool's call."""
    from mcp import Client, StdioServerParameters

    env = server_env(os.environ["ANTHROPIC_BASE_URL"])
    ours = StdioServerParameters(command=str(SCRIPT), args=[], env=env)
    trivial = StdioServerParameters(command=PYTHON, args=[str(TRIVIAL_SERVER)], env=env)
    async with Client(ours) as server, Client(trivial) as floor:
        await ready(server)
        spawned: Any = (
            await server.call_tool("spawn_parallel", {"tasks": [{"task": task_text(0)}]})
        ).structured_content
        (task_id,) = spawned["task_ids"]
        first: Any = (
            await server.call_tool("task_output", {"task_ids": [task_id], "wait_s": 30})
        ).structured_content
        if first["tasks"][0]["output"] != EXPECTED:
            raise RuntimeError(f"task_output answered {first}")
        echoed: Any = (await floor.call_tool("echo", {"text": "x"})).structured_content
        if echoed != {"result": "x"}:
            raise RuntimeError(f"echo answered {echoed}")
        look, echo = list[float](), list[float]()
        for _ in range(calls):  # interleaved, so both see the same machine
            started = time.perf_counter()
            await server.call_tool("task_output", {"task_ids": [task_id], "wait_s": 0})
            look.append(time.perf_counter() - started)
            started = time.perf_counter()
            await floor.call_tool("echo", {"text": "x"})
            echo.append(time.perf_counter() - started)
    return {"task_output_ms": statistics.median(look) * 1000, "trivial_ms": statistics.median(echo) * 1000,
            "calls": calls}  # fmt: skip


CONTENDERS = {"tenk": run_tenk, "defaults": run_defaults, "rtt": run_rtt}


def scenario(fake: Fake, rounds: int, tenk: int) -> dict[str, Any]:
    """Each measure in a fresh process, `rounds` times; the table with each target met or not."""
    runs: dict[str, list[dict[str, Any]]] = {"tenk": [], "defaults": [], "rtt": []}
    sizes = {"tenk": tenk, "defaults": DEFAULT_TASKS, "rtt": RTT_CALLS}
    for round_no in range(rounds):
        for name in ("defaults", "rtt", *(["tenk"] if round_no == 0 else [])):  # tenk: minutes, once
            fake.reset()
            result = run_contender(Path(__file__), ["--contender", name, "--n", str(sizes[name])], fake)
            runs[name].append(result)
            log(f"scale round {round_no} {name}: {result}")
    return {"runs": runs, "markdown": render(runs, tenk)}


def render(runs: dict[str, list[dict[str, Any]]], tenk: int) -> str:
    rows: list[list[object]] = []
    big = runs["tenk"][0]
    cpu_ms = big["cpu"] * 1000 / big["n"]
    rows.append([f"N = {tenk:,} in one spawn: exact outputs", f"{big['ok']:,} / {big['n']:,}",
                 f"all {tenk:,}", _met(big["ok"] == big["n"])])  # fmt: skip
    rows.append([f"N = {tenk:,}: wall", f"{big['wall']:.1f} s", "-", "-"])
    rows.append([f"N = {tenk:,}: CPU per task (server + client)", f"{cpu_ms:.2f} ms", "at most 3 ms",
                 _met(cpu_ms <= 3)])  # fmt: skip
    rows.append([f"N = {tenk:,}: server's peak RSS", f"{big['peak_mib']:.0f} MiB", "at most 400 MB",
                 _met(big["peak_mib"] * 1.048576 <= 400)])  # fmt: skip
    walls = [r["wall"] for r in runs["defaults"]]
    wall = statistics.median(walls)
    ok = min(r["ok"] for r in runs["defaults"])
    rows.append([f"{DEFAULT_TASKS} tasks, default settings: wall (every output checked: {ok}/{DEFAULT_TASKS} "
                 "in the worst round)", f"{wall:.2f} s", "at most 2.5 s",
                 _met(wall <= 2.5 and ok == DEFAULT_TASKS)])  # fmt: skip
    look = statistics.median(r["task_output_ms"] for r in runs["rtt"])
    echo = statistics.median(r["trivial_ms"] for r in runs["rtt"])
    rows.append(
        ["task_output, one finished task: round trip", f"{look:.2f} ms", "at most 2 ms", _met(look <= 2)]
    )
    rows.append(["the same ÷ a trivial tool's round trip in the same run", f"{look / echo:.2f} x "
                 f"({echo:.2f} ms)", "at most 1.3 x", _met(look / echo <= 1.3)])  # fmt: skip
    return table(["measure", "this run", "target", ""], rows)


def _met(yes: bool) -> str:
    return "met" if yes else "not met"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tenk", type=int, default=10_000, help="tasks in the one big spawn")
    parser.add_argument("--latency", type=float, default=1.0)
    add_contender_flags(parser, CONTENDERS)
    args = parser.parse_args()
    if ran_contender(args, CONTENDERS):
        return
    with Fake(args.latency) as fake:
        print(scenario(fake, args.rounds, args.tenk)["markdown"])


if __name__ == "__main__":
    main()
