"""Scenario 2, overhead: what the server itself costs, apart from the provider's latency.

spawn       spawn_parallel of 100 tasks over stdio: the call's latency, median over rounds
rtt         a task_output round trip over stdio (finished task, wait_s=0), median of 200 calls
poll        a group of 5,000 tasks over stdio (100 completed, 100 running, the rest queued): a "done
            yet?" poll with include="status", the same poll of full results (max_chars=1), task_output
            of one task of the group (median of 200) and list_tasks of the group (its default limit)
memory      the engine in process with an instant backend: Python heap per finished task (tracemalloc,
            outputs empty so none is counted) and the process's resident memory after 10,000 finished tasks
cpu         the engine's CPU per task with the instant backend (no HTTP): what the registry, intake and
            runner cost; the HTTP and SDK cost per task is in the fan-out scenario's CPU column
queued      the engine in process: 2,000 queued tasks (20 spawns of 100, one running at a time) that all
            name the same five 199 KB files; the process's resident memory after the spawns
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
from common import SCRIPT, Fake, log, ready, run_contender, server_env, table

SPAWN_TASKS = 100
POLL_TASKS = 5_000
POLL_SLOTS = 100  # the server's concurrency: the first this many answer at once, the next hold


async def measure_stdio(rounds: int) -> dict[str, Any]:
    import os

    from mcp import Client, StdioServerParameters

    args = ["--max-concurrency", str(SPAWN_TASKS), "--max-tasks", str(SPAWN_TASKS)]
    params = StdioServerParameters(
        command=str(SCRIPT), args=args, env=server_env(os.environ["ANTHROPIC_BASE_URL"])
    )
    spawns: list[float] = []
    async with Client(params) as client:
        await ready(client)
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


async def measure_poll() -> dict[str, Any]:
    import os

    from mcp import Client, StdioServerParameters

    args = ["--max-concurrency", str(POLL_SLOTS), "--max-tasks", str(POLL_TASKS)]
    params = StdioServerParameters(
        command=str(SCRIPT), args=args, env=server_env(os.environ["ANTHROPIC_BASE_URL"])
    )
    tasks = [{"task": f"[[latency:0]] [[reply:ok]] item {i}" if i < POLL_SLOTS else
              f"[[latency:0]] [[hold]] item {i}"} for i in range(POLL_TASKS)]  # fmt: skip
    async with Client(params) as client:
        await ready(client)
        spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": tasks})).structured_content
        group, first = spawned["group_id"], spawned["task_ids"][:POLL_SLOTS]
        await client.call_tool("task_output", {"task_ids": first, "wait_s": 30, "max_chars": 1})
        status_ms, status_bytes = await _timed(
            client, 20, {"group_id": group, "wait_s": 0, "include": "status"}
        )
        full_ms, full_bytes = await _timed(client, 3, {"group_id": group, "wait_s": 0, "max_chars": 1})
        one_ms, _ = await _timed(client, 200, {"task_ids": [first[0]], "wait_s": 0, "max_chars": 100})
        list_ms, list_bytes = await _timed(client, 20, {"group_id": group}, tool="list_tasks")
    return {"tasks": POLL_TASKS, "status_ms": status_ms, "status_bytes": status_bytes, "full_ms": full_ms,
            "full_bytes": full_bytes, "one_ms": one_ms, "list_ms": list_ms, "list_bytes": list_bytes}  # fmt: skip


async def _timed(
    client: Any, calls: int, arguments: dict[str, Any], tool: str = "task_output"
) -> tuple[float, int]:
    """The median milliseconds of ``calls`` identical calls, and the bytes of the last answer."""
    times: list[float] = []
    size = 0
    for _ in range(calls):
        started = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        times.append(time.perf_counter() - started)
        size = len(json.dumps(result.structured_content)) + sum(
            len(getattr(b, "text", "")) for b in result.content
        )
    return statistics.median(times) * 1000, size


def verdict(measured: float, limit: float) -> str:
    return "met" if measured < limit else "not met"


class InstantBackend:
    """Answers at once with an empty text: the engine's own cost, with nothing else in the way."""

    name = "instant"

    def __init__(self) -> None:
        from server.backends import Traits

        self.traits = Traits()

    def model_for(self, asked: str | None, server_default: str) -> str:
        return asked or server_default

    def unavailable_reason(self) -> str | None:
        return None

    async def run(self, request: Any, sink: Any) -> Any:
        import anyio

        from server import SubagentResult

        await anyio.lowlevel.checkpoint()
        return SubagentResult(text="", model=request.model, stop_reason="end_turn")


async def measure_engine(tasks: int, trace: bool) -> dict[str, Any]:
    from server import Caller, SpawnRequest, TaskRequest, load_settings, open_runtime

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
        receipt = await runtime.registry.spawn(request, caller=Caller.local())
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


QUEUED_SPAWNS, QUEUED_PER_SPAWN, QUEUED_FILES, QUEUED_FILE_BYTES = 20, 100, 5, 199_000


class HeldBackend(InstantBackend):
    """Never answers: every task but the running one stays queued while the memory is read."""

    name = "held"

    def __init__(self) -> None:
        import anyio

        super().__init__()
        self.running = anyio.Event()

    async def run(self, request: Any, sink: Any) -> Any:
        import anyio

        self.running.set()
        await anyio.sleep_forever()


def measure_queued() -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        names = [f"f{i}.txt" for i in range(QUEUED_FILES)]
        for name in names:
            Path(root, name).write_text(("x" * 99 + "\n") * (QUEUED_FILE_BYTES // 100))
        return asyncio.run(_queued(root, names))


async def _queued(root: str, names: list[str]) -> dict[str, Any]:
    from server import Caller, SpawnRequest, TaskRequest, load_settings, open_runtime

    tasks = QUEUED_SPAWNS * QUEUED_PER_SPAWN
    settings = load_settings({"max_unfinished": str(tasks), "max_concurrency": "1", "roots": [root]})
    backend = HeldBackend()
    async with open_runtime(settings, backend) as runtime:  # type: ignore[arg-type]
        gc.collect()
        base = _rss_kb()
        for spawn in range(QUEUED_SPAWNS):
            request = SpawnRequest(tasks=[TaskRequest(task=f"item {spawn}.{i}", files=names)
                                          for i in range(QUEUED_PER_SPAWN)])  # fmt: skip
            await runtime.registry.spawn(request, caller=Caller.local())
        await backend.running.wait()
        gc.collect()
        grown = _rss_kb() - base
        stats = runtime.registry.statistics()
        runtime.registry.close()
    return {
        "tasks": tasks,
        "queued": stats.queued,
        "rss_kb": grown,
        "held_bytes": getattr(stats, "held_bytes", None),
    }


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
    queued = run_contender(script, ["--part", "queued"], fake)
    log(
        f"overhead: {queued['tasks']:,} queued tasks naming the same files: +{queued['rss_kb'] / 1024:.0f} MiB"
    )
    fake.reset()
    poll = run_contender(script, ["--part", "poll"], fake)
    fake.reset()  # lets the requests still held go
    log(f"overhead: status poll of {poll['tasks']:,} tasks {poll['status_ms']:.1f} ms, "
        f"one task of them {poll['one_ms']:.2f} ms")  # fmt: skip
    spawn, n = stdio["spawn_ms"], f"{poll['tasks']:,}"
    spawn_ms = statistics.median(spawn)
    rows = [
        [f"spawn_parallel, {SPAWN_TASKS} tasks, over stdio", f"{spawn_ms:.1f} ms "
         f"[{min(spawn):.1f}-{max(spawn):.1f}], {len(spawn)} calls after a first (cold) call of "
         f"{stdio['first_spawn_ms']:.0f} ms", "under 50 ms", verdict(spawn_ms, 50)],
        ["task_output round trip over stdio (median of 200)", f"{stdio['rtt_ms']:.2f} ms", "under 5 ms",
         verdict(stdio["rtt_ms"], 5)],
        [f'task_output(include="status") of a {n}-task group, over stdio (median of 20)',
         f"{poll['status_ms']:.1f} ms, {poll['status_bytes'] / poll['tasks']:.0f} B per task", "under 50 ms",
         verdict(poll["status_ms"], 50)],
        [f"task_output of one task of a {n}-task group, over stdio (median of 200)", f"{poll['one_ms']:.2f} ms",
         "under 3 ms", verdict(poll["one_ms"], 3)],
        [f"task_output(max_chars=1) of a {n}-task group, over stdio (median of 3)",
         f"{poll['full_ms']:.0f} ms, {poll['full_bytes'] / poll['tasks']:.0f} B per task", "-", "-"],
        [f"list_tasks of a {n}-task group (limit 100), over stdio (median of 20)",
         f"{poll['list_ms']:.1f} ms, {poll['list_bytes'] / 1024:.0f} KiB", "-", "-"],
        ["heap per finished task, outputs excluded", f"{heap['heap_per_task']:.0f} B", "under 4 KB",
         verdict(heap["heap_per_task"], 4096)],
        [f"resident memory after {heap['finished']:,} finished tasks", f"+{cpu['rss_kb'] / 1024:.1f} MiB", "-",
         "-"],
        ["engine CPU per task (instant backend, no HTTP)", f"{cpu['cpu_ms_per_task']:.3f} ms", "-", "-"],
        [f"resident memory of {queued['tasks']:,} queued tasks naming the same {QUEUED_FILES} files of "
         f"{QUEUED_FILE_BYTES // 1000} KB", f"+{queued['rss_kb'] / 1024:.1f} MiB", "under 100 MB",
         verdict(queued["rss_kb"] * 1024, 100e6)],
    ]  # fmt: skip
    return {"runs": {"stdio": stdio, "memory": heap, "cpu": cpu, "poll": poll, "queued": queued},
            "markdown": table(["measure", "measured", "target", ""], rows)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument(
        "--part", choices=["stdio", "poll", "memory", "cpu", "queued"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.part == "stdio":
        print(json.dumps(asyncio.run(measure_stdio(args.rounds))))
    elif args.part == "poll":
        print(json.dumps(asyncio.run(measure_poll())))
    elif args.part == "queued":
        print(json.dumps(measure_queued()))
    elif args.part:
        print(json.dumps(asyncio.run(measure_engine(args.tasks, trace=args.part == "memory"))))
    else:
        with Fake(args.latency) as fake:
            print(scenario(fake, args.rounds, args.tasks)["markdown"])


if __name__ == "__main__":
    main()
