"""Scenario 2, overhead: what the server itself costs, apart from the provider's latency.

spawn       spawn_parallel of 100 tasks over stdio: the call's latency, median over rounds
rtt         a task_output round trip over stdio (finished task, wait_s=0), median of 200 calls
memory      the engine in process with an instant backend: Python heap per finished task (tracemalloc,
            outputs empty so none is counted) and the process's resident memory after 10,000 finished tasks
cpu         the engine's CPU per task with the instant backend (no HTTP): what the registry, intake and
            runner cost; the HTTP and SDK cost per task is in the fan-out scenario's CPU column
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRIPT, Fake, log, run_contender, server_env, table

SPAWN_TASKS = 100


async def measure_stdio(rounds: int) -> dict[str, Any]:
    import os

    from mcp import Client, StdioServerParameters

    args = ["--max-concurrency", str(SPAWN_TASKS), "--max-tasks", str(SPAWN_TASKS)]
    params = StdioServerParameters(
        command=str(SCRIPT), args=args, env=server_env(os.environ["ANTHROPIC_BASE_URL"])
    )
    spawns: list[float] = []
    async with Client(params) as client:
        task_id = ""
        for _ in range(rounds + 1):  # the first call is the cold one, reported apart
            tasks = [{"task": f"[[words:5]] item {i}"} for i in range(SPAWN_TASKS)]
            started = time.perf_counter()
            spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": tasks})).structured_content
            spawns.append(time.perf_counter() - started)
            task_id = spawned["task_ids"][0]
            while True:
                result: Any = await client.call_tool("task_output", {"group_id": spawned["group_id"], "wait_s": 30,
                                                                     "max_chars": 1})  # fmt: skip
                if result.structured_content["done"]:
                    break
        rtts: list[float] = []
        for _ in range(200):
            started = time.perf_counter()
            await client.call_tool("task_output", {"task_ids": [task_id], "wait_s": 0, "max_chars": 100})
            rtts.append(time.perf_counter() - started)
    return {"first_spawn_ms": spawns[0] * 1000, "spawn_ms": [s * 1000 for s in spawns[1:]],
            "rtt_ms": statistics.median(rtts) * 1000}  # fmt: skip


class InstantBackend:
    """Answers at once with an empty text: the engine's own cost, with nothing else in the way."""

    name = "instant"
    caches_prompts = False
    limiter = None
    shares_server_limit = True
    default_timeout_s = None
    offers_tools = False

    def model_for(self, asked: str | None, server_default: str) -> str:
        return asked or server_default

    def unavailable_reason(self) -> str | None:
        return None

    async def run(self, request: Any, sink: Any) -> Any:
        import anyio

        from fanout_mcp.server import SubagentResult

        await anyio.lowlevel.checkpoint()
        return SubagentResult(text="", model=request.model, stop_reason="end_turn")


async def measure_engine(tasks: int, trace: bool) -> dict[str, Any]:
    from fanout_mcp.server import SpawnRequest, TaskRequest, load_settings, open_runtime

    limits = {"max_tasks_per_spawn": str(tasks), "max_unfinished": str(tasks), "max_finished": str(tasks),
              "max_concurrency": "1000", "roots": [str(Path.cwd())]}  # fmt: skip
    settings = load_settings(limits)
    async with open_runtime(settings, InstantBackend()) as runtime:  # type: ignore[arg-type]
        request = SpawnRequest(tasks=[TaskRequest(task=f"item {i}") for i in range(tasks)])
        gc.collect()
        if trace:
            tracemalloc.start()
        base_heap = tracemalloc.get_traced_memory()[0] if trace else 0
        base_rss = _rss_kb()
        started_cpu = time.process_time()
        receipt = await runtime.registry.spawn(request)
        await runtime.registry.wait([t.task_id for t in receipt.tasks])
        cpu = time.process_time() - started_cpu
        del receipt
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0] - base_heap if trace else 0
        rss = _rss_kb() - base_rss
        if trace:
            tracemalloc.stop()
        finished = runtime.registry.statistics().finished
    return {"tasks": tasks, "finished": finished, "heap_per_task": heap / tasks, "rss_kb": rss,
            "cpu_ms_per_task": cpu * 1000 / tasks}  # fmt: skip


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scenario(fake: Fake, rounds: int, tasks: int) -> dict[str, Any]:
    fake.reset()
    script = Path(__file__)
    stdio = run_contender(script, ["--part", "stdio", "--rounds", str(rounds)], fake)
    log(f"overhead: spawn {statistics.median(stdio['spawn_ms']):.1f} ms, rtt {stdio['rtt_ms']:.2f} ms")
    heap = run_contender(script, ["--part", "memory", "--tasks", str(tasks)], fake)
    cpu = run_contender(script, ["--part", "cpu", "--tasks", str(tasks)], fake)
    log(f"overhead: {heap['heap_per_task']:.0f} B/task heap, {cpu['cpu_ms_per_task']:.3f} ms CPU/task")
    spawn = stdio["spawn_ms"]
    rows = [
        [f"spawn_parallel, {SPAWN_TASKS} tasks, over stdio", f"{statistics.median(spawn):.1f} ms "
         f"[{min(spawn):.1f}-{max(spawn):.1f}], {len(spawn)} calls after a first (cold) call of "
         f"{stdio['first_spawn_ms']:.0f} ms", "under 50 ms"],
        ["task_output round trip over stdio (median of 200)", f"{stdio['rtt_ms']:.2f} ms", "under 5 ms"],
        ["heap per finished task, outputs excluded", f"{heap['heap_per_task']:.0f} B", "under 4 KB"],
        [f"resident memory after {heap['finished']:,} finished tasks", f"+{cpu['rss_kb'] / 1024:.1f} MiB", "-"],
        ["engine CPU per task (instant backend, no HTTP)", f"{cpu['cpu_ms_per_task']:.3f} ms", "-"],
    ]  # fmt: skip
    return {"runs": {"stdio": stdio, "memory": heap, "cpu": cpu},
            "markdown": table(["measure", "measured", "target"], rows)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--part", choices=["stdio", "memory", "cpu"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "stdio":
        print(json.dumps(asyncio.run(measure_stdio(args.rounds))))
    elif args.part:
        print(json.dumps(asyncio.run(measure_engine(args.tasks, trace=args.part == "memory"))))
    else:
        with Fake(args.latency) as fake:
            print(scenario(fake, args.rounds, args.tasks)["markdown"])


if __name__ == "__main__":
    main()
