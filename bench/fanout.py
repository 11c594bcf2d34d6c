"""Scenario 1, fan-out: N tasks of latency L, about 200 streamed output tokens each.

Contenders, each in a fresh process, timed from the first request to the last answer collected
(set-up excluded):
  sequential  one messages.stream() after another over one AsyncAnthropic
  gather      plain asyncio.gather of messages.stream() over one AsyncAnthropic (the floor)
  engine      fanout's engine in process: registry.spawn, then registry.wait
  stdio       the installed fanout-mcp over stdio with the MCP client: spawn_parallel, then task_output
              until done (what a user's client does); CPU includes the server process
  mcp-agent   mcp-agent 0.2.6's ParallelLLM (bench/peer/), when its virtual environment is set up

Run on its own: ``.venv/bin/python bench/fanout.py --ns 20,100 --rounds 3`` (bench/run.py runs it
with the other scenarios).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MODEL,
    SCRIPT,
    Fake,
    add_contender_flags,
    children_cpu,
    log,
    median,
    ran_contender,
    rotations,
    run_contender,
    server_env,
    spread,
    table,
)

WORDS = 200
PEER_PYTHON = Path(__file__).resolve().parent / "peer" / ".venv" / "bin" / "python"
PEER_CLIENT = Path(__file__).resolve().parent / "peer" / "mcpagent_client.py"


def task_text(i: int) -> str:
    return f"[[words:{WORDS}]] subtask {i}"


async def run_sequential(n: int) -> dict[str, Any]:
    import anthropic

    client = anthropic.AsyncAnthropic(max_retries=2)
    started, cpu = time.perf_counter(), time.process_time()
    ok = 0
    for i in range(n):
        async with client.messages.stream(
            model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": task_text(i)}]
        ) as stream:
            ok += (await stream.get_final_message()).usage.output_tokens == WORDS
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return {"wall": wall, "cpu": cpu, "ok": ok}


async def run_gather(n: int) -> dict[str, Any]:
    import anthropic

    client = anthropic.AsyncAnthropic(max_retries=2)

    async def one(i: int) -> int:
        async with client.messages.stream(
            model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": task_text(i)}]
        ) as stream:
            return (await stream.get_final_message()).usage.output_tokens

    started, cpu = time.perf_counter(), time.process_time()
    tokens = await asyncio.gather(*(one(i) for i in range(n)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return {"wall": wall, "cpu": cpu, "ok": sum(1 for t in tokens if t == WORDS)}


async def run_engine(n: int) -> dict[str, Any]:
    from fanout_mcp.server import SpawnRequest, TaskRequest, TaskState, load_settings, open_runtime

    limits = {"max_concurrency": str(max(n, 1)), "max_tasks_per_spawn": str(max(n, 1))}
    settings = load_settings({**limits, "roots": [str(Path.cwd())]})
    async with open_runtime(settings) as runtime:
        request = SpawnRequest(tasks=[TaskRequest(task=task_text(i), max_tokens=1024) for i in range(n)])
        started, cpu = time.perf_counter(), time.process_time()
        receipt = await runtime.registry.spawn(request)
        ids = [t.task_id for t in receipt.tasks]
        await runtime.registry.wait(ids)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        ok = sum(1 for s in runtime.registry.snapshots(ids) if s.state is TaskState.COMPLETED)
    return {"wall": wall, "cpu": cpu, "ok": ok}


async def run_stdio(n: int) -> dict[str, Any]:
    import os

    from mcp import Client, StdioServerParameters

    args = ["--max-concurrency", str(max(n, 1)), "--max-tasks", str(max(n, 1))]
    params = StdioServerParameters(
        command=str(SCRIPT), args=args, env=server_env(os.environ["ANTHROPIC_BASE_URL"])
    )
    async with Client(params) as client:
        tasks = [{"task": task_text(i), "max_tokens": 1024} for i in range(n)]
        started, cpu, server = time.perf_counter(), time.process_time(), children_cpu()
        spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": tasks})).structured_content
        spawn_s = time.perf_counter() - started
        while True:
            result: Any = await client.call_tool(
                "task_output", {"group_id": spawned["group_id"], "wait_s": 30, "max_chars": 1}
            )
            if result.structured_content["done"]:
                break
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_cpu = children_cpu() - server
        ok = result.structured_content["counts"]["completed"]
    return {"wall": wall, "cpu": cpu + server_cpu, "server_cpu": server_cpu, "ok": ok, "spawn_s": spawn_s}


CONTENDERS = {"sequential": run_sequential, "gather": run_gather, "engine": run_engine, "stdio": run_stdio}


def names(with_peer: bool) -> list[str]:
    return [*CONTENDERS, *(["mcp-agent"] if with_peer and PEER_PYTHON.exists() else [])]


def run_one(fake: Fake, contender: str, n: int) -> dict[str, Any]:
    fake.reset()
    if contender == "mcp-agent":
        return run_peer(fake, n)
    return run_contender(Path(__file__), ["--contender", contender, "--n", str(n)], fake)


def run_peer(fake: Fake, n: int) -> dict[str, Any]:
    import os
    import subprocess

    env = {**os.environ, "ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "bench-key"}
    done = subprocess.run([str(PEER_PYTHON), str(PEER_CLIENT), "--n", str(n), "--words", str(WORDS)], env=env,
                          capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"mcp-agent N={n} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def scenario(
    fake: Fake, ns: list[int], rounds: int, latency: float, seq_max_n: int, peer: bool
) -> dict[str, Any]:
    """Every contender at every N, rotated round by round; rows for the table and the raw runs."""
    runs: list[dict[str, Any]] = []
    for round_no, order in rotations(names(peer), rounds):
        for n in ns:
            for contender in order:
                if contender == "sequential" and (n > seq_max_n or (n > 10 and round_no > 0)):
                    continue  # N x L seconds each: one round is enough above N = 10
                result = run_one(fake, contender, n)
                runs.append({"round": round_no, "n": n, "contender": contender, **result})
                log(
                    f"fan-out round {round_no} N={n} {contender}: {result['wall']:.3f} s, ok {result['ok']}/{n}"
                )
    return {"runs": runs, "markdown": render(runs, ns, latency, seq_max_n, peer)}


def render(runs: list[dict[str, Any]], ns: list[int], latency: float, seq_max_n: int, peer: bool) -> str:
    rows: list[list[object]] = []
    for n in ns:
        floor = {r["round"]: r["wall"] for r in runs if r["n"] == n and r["contender"] == "gather"}
        for contender in names(peer):
            mine = [r for r in runs if r["n"] == n and r["contender"] == contender]
            if not mine:
                why = (
                    f"not run: about {n * latency:.0f} s; --seq-max-n {n} runs it"
                    if contender == "sequential"
                    else "not run"
                )
                rows.append([n, contender, 0, why, "-", "-", "-", "-"])
                continue
            walls = [r["wall"] for r in mine]
            ratios = [r["wall"] / floor[r["round"]] for r in mine if r["round"] in floor]
            ratio = "-" if contender == "gather" else (f"{median(ratios):.2f}" if ratios else "-")
            cpu = median([r["cpu"] * 1000 / max(n, 1) for r in mine])
            rows.append([n, contender, len(mine), spread(walls), f"{median(walls) / latency:.2f}", ratio,
                         f"{cpu:.2f}", f"{min(r['ok'] for r in mine)}/{n}"])  # fmt: skip
    header = [
        "N",
        "contender",
        "runs",
        "wall s median [min-max]",
        "wall / L",
        "vs gather",
        "CPU ms / task",
        "ok",
    ]
    return table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ns", default="20,100")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--seq-max-n", type=int, default=100)
    parser.add_argument(
        "--peer", action="store_true", help="include mcp-agent (run bench/peer/setup.py first)"
    )
    add_contender_flags(parser, CONTENDERS)
    args = parser.parse_args()
    if ran_contender(args, CONTENDERS):
        return
    with Fake(args.latency) as fake:
        result = scenario(fake, [int(n) for n in args.ns.split(",")], args.rounds, args.latency, args.seq_max_n,
                          args.peer)  # fmt: skip
    print(result["markdown"])


if __name__ == "__main__":
    main()
