"""Scenario 3, rate limit: the fake admits at most LIMIT requests per sliding WINDOW and answers the rest
429 with retry-after. 300 tasks.

The window is shortened from the API's 60 s (default 3 s, LIMIT 50: the same shape, a fraction of the
time) so that the scenario runs in seconds; what is compared is the throughput relative to what the
window allows, and how many tasks each contender loses.

Contenders, each in a fresh process:
  gather   plain asyncio.gather over one AsyncAnthropic with the SDK's default retries (max_retries=2)
  stdio    the installed fanout-mcp over stdio (its own retries until each task's timeout, and its
           adaptive limit on requests in flight)
While the server runs, the fake's count of requests in flight is sampled 10 times a second.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MODEL,
    SCRIPT,
    Fake,
    add_contender_flags,
    log,
    ran_contender,
    ready,
    rotations,
    run_contender,
    server_env,
    spread,
    table,
)

TASKS = 300


async def run_gather(n: int) -> dict[str, Any]:
    import anthropic

    client = anthropic.AsyncAnthropic()  # the SDK's defaults: max_retries=2, sleeps for any retry-after

    async def one(i: int) -> bool:
        try:
            await client.messages.create(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"[[words:20]] {i}"}]
            )
        except anthropic.APIError:
            return False
        return True

    started = time.perf_counter()
    done = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - started
    await client.close()
    return {"wall": wall, "ok": sum(done), "failed": n - sum(done)}


async def run_stdio(n: int) -> dict[str, Any]:
    import os

    from mcp import Client, StdioServerParameters

    args = ["--max-tasks", str(n), "--max-concurrency", "100"]
    params = StdioServerParameters(
        command=str(SCRIPT), args=args, env=server_env(os.environ["ANTHROPIC_BASE_URL"])
    )
    async with Client(params) as client:
        await ready(client)
        tasks = [{"task": f"[[words:20]] {i}", "max_tokens": 64} for i in range(n)]
        started = time.perf_counter()
        spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": tasks})).structured_content
        while True:
            result: Any = await client.call_tool(
                "task_output", {"group_id": spawned["group_id"], "wait_s": 30, "max_chars": 1}
            )
            if result.structured_content["done"]:
                break
        wall = time.perf_counter() - started
    counts = result.structured_content["counts"]
    return {"wall": wall, "ok": counts["completed"], "failed": n - counts["completed"]}


CONTENDERS = {"gather": run_gather, "stdio": run_stdio}


def sample_in_flight(fake: Fake, stop: threading.Event, samples: list[tuple[float, int, int]]) -> None:
    started = time.perf_counter()
    while not stop.wait(0.1):
        stats = fake.stats()
        samples.append(
            (round(time.perf_counter() - started, 2), stats["in_flight"], stats["statuses"].get("429", 0))
        )


def scenario(fake: Fake, rounds: int, tasks: int, limit: int, window: float) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    series: list[tuple[float, int, int]] = []
    for round_no, order in rotations(list(CONTENDERS), rounds):
        for contender in order:
            fake.reset(rpm_limit=limit, rate_window_s=window)
            stop, samples = threading.Event(), list[tuple[float, int, int]]()
            sampler = threading.Thread(target=sample_in_flight, args=(fake, stop, samples), daemon=True)
            sampler.start()
            try:
                result = run_contender(Path(__file__), ["--contender", contender, "--n", str(tasks)], fake)
            finally:
                stop.set()
                sampler.join()
            result["rejected"] = fake.stats()["statuses"].get("429", 0)
            runs.append({"round": round_no, "contender": contender, **result})
            if contender == "stdio" and not series:
                series = samples
            log(f"rate limit round {round_no} {contender}: {result['ok']}/{tasks} in {result['wall']:.2f} s")
    ideal = (math.ceil(tasks / limit) - 1) * window + 1.0  # the window's arithmetic, plus one latency
    rows: list[list[object]] = []
    for contender in CONTENDERS:
        mine = [r for r in runs if r["contender"] == contender]
        throughput = [r["ok"] / r["wall"] for r in mine]
        rows.append([contender, len(mine), f"{min(r['ok'] for r in mine)}/{tasks}", max(r["failed"] for r in mine),
                     spread([r["wall"] for r in mine], 2), spread(throughput, 1),
                     f"{(tasks / ideal):.1f}", spread([t / (tasks / ideal) for t in throughput], 2),
                     round(sum(r["rejected"] for r in mine) / len(mine))])  # fmt: skip
    header = ["contender", "runs", "completed (worst)", "failed (worst)", "wall s", "tasks/s", "limit allows tasks/s",
              "throughput ÷ limit", "429s sent"]  # fmt: skip
    markdown = table(header, rows) + "\n\n" + render_series(series, window)
    return {"runs": runs, "in_flight": series, "markdown": markdown}


def render_series(samples: list[tuple[float, int, int]], window: float) -> str:
    """The server's requests in flight over time (the fake's view), one line per half window."""
    if not samples:
        return ""
    step = window / 2
    buckets: dict[int, list[tuple[float, int, int]]] = {}
    for sample in samples:
        buckets.setdefault(int(sample[0] // step), []).append(sample)
    cells = [
        f"{b * step:.1f}s: {max(s[1] for s in group)} ({group[-1][2]} 429s)"
        for b, group in sorted(buckets.items())
    ]
    return (
        "Server, requests in flight at the fake over time (most in each half window; 429s so far): "
        + ", ".join(cells)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--window", type=float, default=3.0)
    add_contender_flags(parser, CONTENDERS)
    args = parser.parse_args()
    if ran_contender(args, CONTENDERS):
        return
    with Fake(1.0) as fake:
        print(scenario(fake, args.rounds, args.tasks, args.limit, args.window)["markdown"])


if __name__ == "__main__":
    main()
