"""Fan-out benchmark: the server against the floor (plain asyncio.gather over one AsyncAnthropic).

Starts the fake Messages API (tests/fake_api.py) in its own process on 127.0.0.1 with latency L, then
runs each contender in a fresh process, alternating contenders round by round, and prints a markdown
table of medians and ratios (and writes the raw runs as JSON):

    .venv/bin/python bench/fanout.py                 # N = 20 and 100, L = 1 s, 5 rounds
    .venv/bin/python bench/fanout.py --quick         # N = 20, 3 rounds (well under a minute)
    .venv/bin/python bench/fanout.py --ns 1,10,100,1000 --rounds 5 --out bench/results/fanout.json

Contenders, each timed from the first request to the last answer collected (set-up excluded):
  gather   plain asyncio.gather of messages.stream() over one AsyncAnthropic (the floor)
  engine   the engine in process: registry.spawn, then registry.wait
  stdio    the installed fanout-mcp over stdio with the MCP client: spawn_parallel, then task_output
           until done (the client a user has)
Every task asks for 200 streamed output words. Each contender must get N of N answers or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SCRIPT = Path(PYTHON).with_name("fanout-mcp")
WORDS = 200


def task_text(i: int) -> str:
    return f"[[words:{WORDS}]] subtask {i}"


# --- contenders (each runs in its own process) -----------------------------------------------------


async def run_gather(n: int) -> dict[str, Any]:
    import anthropic

    client = anthropic.AsyncAnthropic(max_retries=2)

    async def one(i: int) -> int:
        async with client.messages.stream(
            model="claude-sonnet-5-5", max_tokens=1024, messages=[{"role": "user", "content": task_text(i)}]
        ) as stream:
            final = await stream.get_final_message()
        return final.usage.output_tokens

    started, cpu = time.perf_counter(), time.process_time()
    tokens = await asyncio.gather(*(one(i) for i in range(n)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return {"wall": wall, "cpu": cpu, "ok": sum(1 for t in tokens if t == WORDS)}


async def run_engine(n: int) -> dict[str, Any]:
    from fanout_mcp.server import SpawnRequest, TaskRequest, TaskState, load_settings, open_runtime

    settings = load_settings({"max_concurrency": str(max(n, 1)), "max_tasks_per_spawn": str(max(n, 1))})
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
    from mcp import Client, StdioServerParameters

    names = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "HOME", "PATH")
    env = {k: os.environ[k] for k in names if k in os.environ}
    args = ["--max-concurrency", str(max(n, 1)), "--max-tasks", str(max(n, 1))]
    params = StdioServerParameters(command=str(SCRIPT), args=args, env=env)
    async with Client(params) as client:
        tasks = [{"task": task_text(i), "max_tokens": 1024} for i in range(n)]
        started = time.perf_counter()
        spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": tasks})).structured_content
        spawn_s = time.perf_counter() - started
        while True:
            result: Any = await client.call_tool(
                "task_output", {"group_id": spawned["group_id"], "wait_s": 30, "max_chars": 1}
            )
            if result.structured_content["done"]:
                break
        wall = time.perf_counter() - started
        ok = result.structured_content["counts"]["completed"]
        rtts = []
        for _ in range(200):
            t0 = time.perf_counter()
            await client.call_tool("list_tasks", {"state": "queued"})
            rtts.append(time.perf_counter() - t0)
    return {"wall": wall, "ok": ok, "spawn_s": spawn_s, "rtt_median_s": statistics.median(rtts)}


CONTENDERS = {"gather": run_gather, "engine": run_engine, "stdio": run_stdio}


# --- orchestration ------------------------------------------------------------------------------------


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen(
        [PYTHON, str(REPO / "tests" / "fake_api.py"), "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    line = fake.stdout.readline().strip()
    if not line.startswith("FAKE_API_URL="):
        fake.kill()
        raise SystemExit(f"the fake API did not start: {line!r}")
    return fake, line.split("=", 1)[1]


def run_one(contender: str, n: int, url: str) -> dict[str, Any]:
    env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "bench-key"}
    done = subprocess.run(
        [PYTHON, __file__, "--contender", contender, "--n", str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{contender} N={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(runs: list[dict[str, Any]], ns: list[int], latency: float) -> str:
    lines = [
        "| N | contender | runs | wall s (median [min-max]) | wall / L | vs gather (median ratio) | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in ns:
        floor = {r["round"]: r["wall"] for r in runs if r["n"] == n and r["contender"] == "gather"}
        for contender in CONTENDERS:
            mine = [r for r in runs if r["n"] == n and r["contender"] == contender]
            if not mine:
                continue
            walls = [r["wall"] for r in mine]
            ratios = [r["wall"] / floor[r["round"]] for r in mine if r["round"] in floor]
            ratio = "-" if contender == "gather" or not ratios else f"{statistics.median(ratios):.2f}"
            lines.append(
                f"| {n} | {contender} | {len(mine)} | {statistics.median(walls):.3f} [{min(walls):.3f}-"
                f"{max(walls):.3f}] | {statistics.median(walls) / latency:.2f} | {ratio} | "
                f"{min(r['ok'] for r in mine)}/{n} |"
            )
    stdio = [r for r in runs if r["contender"] == "stdio"]
    if stdio:
        spawn = {n: statistics.median(r["spawn_s"] for r in stdio if r["n"] == n) for n in ns}
        rtt = statistics.median(r["rtt_median_s"] for r in stdio)
        lines.append("")
        lines.append(
            "spawn_parallel over stdio (median): "
            + ", ".join(f"N={n}: {spawn[n] * 1000:.1f} ms" for n in ns)
            + f"; tool-call round trip over stdio (median of medians): {rtt * 1000:.2f} ms"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ns", default="20,100")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--contender", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        print(json.dumps(asyncio.run(CONTENDERS[args.contender](args.n))))
        return
    ns = [20] if args.quick else [int(n) for n in args.ns.split(",")]
    rounds = 3 if args.quick else args.rounds
    fake, url = start_fake(args.latency)
    runs: list[dict[str, Any]] = []
    try:
        names = list(CONTENDERS)
        for round_no in range(rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for n in ns:
                for contender in order:
                    result = run_one(contender, n, url)
                    runs.append({"round": round_no, "n": n, "contender": contender, **result})
                    print(f"round {round_no} N={n} {contender}: {result['wall']:.3f} s", file=sys.stderr)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    print(table(runs, ns, args.latency))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"latency": args.latency, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
