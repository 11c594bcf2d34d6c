"""Scenario 1, fan-out: N tasks of latency L, about 200 streamed output tokens each.

Contenders, each in a fresh process, timed from the first request to the last answer collected and
checked word for word (set-up excluded):
  sequential      one raw messages.create(stream=True) after another over one AsyncAnthropic
  gather-aiohttp  the fair floor: asyncio.gather of raw messages.create(stream=True) over one
                  AsyncAnthropic on the SDK's aiohttp transport (anthropic.DefaultAioHttpClient), the text
                  joined from its events: the cheapest correct path through the SDK, on the transport the
                  server uses
  gather          the same on the SDK's default transport (httpx): the path most programs take
  gather-helper   gather with the SDK's messages.stream() helper and get_final_message() (more CPU)
  gather-nostream gather with a plain messages.create(): the floor for a contender that does not stream
  engine          fanout's engine in process: registry.spawn, registry.wait, then every task's output
  stdio           the installed fanout-mcp over stdio with the MCP client, as a client uses it:
                  spawn_parallel, task_output(include="status") until done, then every output paged
                  back through task_output by task_ids; CPU includes the server process. Its tasks are
                  kept in the default durable store (a new SQLite file for each server)
  stdio-memory    the same with --store memory: what the durable store costs, side by side
  mcp-agent       mcp-agent 0.2.6's ParallelLLM (bench/peer/), when its virtual environment is set up;
                  it does not stream (compare it with gather-nostream)

Run on its own: ``.venv/bin/python bench/fanout.py --ns 20,100 --rounds 3`` (bench/run.py runs it
with the other scenarios).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MODEL,
    SCRIPT,
    Fake,
    add_contender_flags,
    child_peak_rss_mib,
    children_cpu,
    log,
    median,
    ran_contender,
    ready,
    rotations,
    run_contender,
    server_env,
    spread,
    table,
)

WORDS = 200
PEER_PYTHON = Path(__file__).resolve().parent / "peer" / ".venv" / "bin" / "python"
PEER_CLIENT = Path(__file__).resolve().parent / "peer" / "mcpagent_client.py"


EXPECTED = " ".join(f"w{i}" for i in range(1, WORDS + 1))  #: the fake's answer to task_text, exactly
#: task ids per task_output page: 25 answers of ~890 characters, each with ~450 characters of its other
#: fields, fit the 40,000-character result whole. (40, as before 2026-12-07, did not: every answer of
#: every page came back cut and was fetched again alone, ~1,025 calls at N = 1000 instead of 40.)
PAGE_IDS = 25


def task_text(i: int) -> str:
    return f"[[words:{WORDS}]] subtask {i}"


def request(i: int) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": task_text(i)}]}


async def raw_text(client: Any, i: int) -> str:
    """One answer through raw stream events: the text deltas joined."""
    stream = await client.messages.create(**request(i), stream=True)
    async with stream:
        parts = [event.delta.text async for event in stream
                 if event.type == "content_block_delta" and event.delta.type == "text_delta"]  # fmt: skip
    return "".join(parts)


async def helper_text(client: Any, i: int) -> str:
    async with client.messages.stream(**request(i)) as stream:
        message = await stream.get_final_message()
    return "".join(block.text for block in message.content if block.type == "text")


async def whole_text(client: Any, i: int) -> str:
    message = await client.messages.create(**request(i))
    return "".join(block.text for block in message.content if block.type == "text")


async def run_sequential(n: int) -> dict[str, Any]:
    import anthropic

    client = anthropic.AsyncAnthropic(max_retries=2)
    started, cpu = time.perf_counter(), time.process_time()
    texts = [await raw_text(client, i) for i in range(n)]
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return {"wall": wall, "cpu": cpu, "ok": sum(text == EXPECTED for text in texts)}


def gathered(answer: Any, *, aiohttp: bool = False) -> Any:
    async def run(n: int) -> dict[str, Any]:
        import anthropic

        # The aiohttp pool's limit as the SDK sets it (1000 connections): enough for every N here but
        # the scale scenario's, which only the server runs.
        http_client = anthropic.DefaultAioHttpClient() if aiohttp else None
        client = anthropic.AsyncAnthropic(max_retries=2, http_client=http_client)
        started, cpu = time.perf_counter(), time.process_time()
        texts = await asyncio.gather(*(answer(client, i) for i in range(n)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        await client.close()
        return {"wall": wall, "cpu": cpu, "ok": sum(text == EXPECTED for text in texts)}

    return run


async def run_engine(n: int) -> dict[str, Any]:
    from server import Caller, SpawnRequest, TaskRequest, TaskState, load_settings, open_runtime

    limits = {"max_concurrency": str(max(n, 1)), "max_tasks_per_spawn": str(max(n, 1))}
    settings = load_settings({**limits, "roots": [str(Path.cwd())]})
    async with open_runtime(settings) as runtime:
        request = SpawnRequest(tasks=[TaskRequest(task=task_text(i), max_tokens=1024) for i in range(n)])
        started, cpu = time.perf_counter(), time.process_time()
        receipt = await runtime.registry.spawn(request, caller=Caller.local())
        ids = [t.task_id for t in receipt.tasks]
        await runtime.registry.wait(ids)
        outputs = [s.output for s in runtime.registry.snapshots(ids) if s.state is TaskState.COMPLETED]
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "ok": sum(text == EXPECTED for text in outputs)}


async def run_stdio(n: int) -> dict[str, Any]:
    return await over_stdio(["--max-concurrency", str(max(n, 1)), "--max-tasks", str(max(n, 1))], n)


async def run_stdio_memory(n: int) -> dict[str, Any]:
    limits = ["--max-concurrency", str(max(n, 1)), "--max-tasks", str(max(n, 1))]
    return await over_stdio(limits, n, store="memory")


async def over_stdio(args: Sequence[str], n: int, store: str = "durable") -> dict[str, Any]:
    """n tasks in one spawn_parallel to the installed server started with args, status polls until done,
    every output fetched and checked; wall, CPU (client + server) and the server's peak memory."""
    import os

    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=str(SCRIPT), args=list(args), env=server_env(os.environ["ANTHROPIC_BASE_URL"], store)
    )
    async with Client(params) as client:
        await ready(client)
        started, cpu, server = time.perf_counter(), time.process_time(), children_cpu()
        outputs, spawn_s = await spawn_and_collect(client, n)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_cpu = children_cpu() - server
        peak = child_peak_rss_mib()
    ok = sum(text == EXPECTED for text in outputs.values())
    return {"wall": wall, "cpu": cpu + server_cpu, "server_cpu": server_cpu, "ok": ok, "n": n,
            "spawn_s": spawn_s, "peak_mib": peak}  # fmt: skip


async def spawn_and_collect(
    client: Any, n: int, unavailable: list[str] | None = None
) -> tuple[dict[str, str], float]:
    """n tasks in one spawn_parallel, status polls until the group is done, then every output fetched;
    the outputs by task id and the seconds spawn_parallel took to answer. A status poll answered
    backend_unavailable is polled again if ``unavailable`` is given (its message appended there), else
    an error."""
    tasks = [{"task": task_text(i), "max_tokens": 1024} for i in range(n)]
    started = time.perf_counter()
    spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": tasks})).structured_content
    if "group_id" not in spawned:
        raise RuntimeError(f"spawn_parallel refused: {spawned}")
    spawn_s = time.perf_counter() - started
    while True:
        status: Any = (
            await client.call_tool(
                "task_output", {"group_id": spawned["group_id"], "wait_s": 30, "include": "status"}
            )
        ).structured_content
        error: dict[str, Any] = status.get("error") or {}
        if unavailable is not None and error.get("kind") == "backend_unavailable":
            unavailable.append(error["message"])
        elif "done" not in status:
            raise RuntimeError(f"task_output answered {status}")
        elif status["done"]:
            break
    return await fetch_outputs(client, spawned["task_ids"]), spawn_s


async def fetch_outputs(client: Any, ids: list[str]) -> dict[str, str]:
    """Every task's whole output, paged as a client pages it: task_ids a page at a time, and a task
    whose output was cut (truncated) again from its next_offset."""
    outputs: dict[str, str] = {}
    for start in range(0, len(ids), PAGE_IDS):
        page: Any = await client.call_tool(
            "task_output", {"task_ids": ids[start : start + PAGE_IDS], "wait_s": 0}
        )
        for view in page.structured_content["tasks"]:
            text = view["output"] or ""
            while view["truncated"]:
                more: Any = await client.call_tool(
                    "task_output", {"task_ids": [view["task_id"]], "wait_s": 0, "offset": view["next_offset"]}
                )
                view = more.structured_content["tasks"][0]
                text += view["output"] or ""
            outputs[view["task_id"]] = text
    return outputs


CONTENDERS = {
    "sequential": run_sequential,
    "gather-aiohttp": gathered(raw_text, aiohttp=True),
    "gather": gathered(raw_text),
    "gather-helper": gathered(helper_text),
    "gather-nostream": gathered(whole_text),
    "engine": run_engine,
    "stdio": run_stdio,
    "stdio-memory": run_stdio_memory,
}


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
    fake: Fake,
    ns: list[int],
    rounds: int,
    latency: float,
    seq_max_n: int,
    peer: bool,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Every contender (or those in ``only``) at every N, rotated round by round; rows for the table and
    the raw runs."""
    runs: list[dict[str, Any]] = []
    for round_no, order in rotations([c for c in names(peer) if only is None or c in only], rounds):
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


FLOOR = "gather-aiohttp"


def render(runs: list[dict[str, Any]], ns: list[int], latency: float, seq_max_n: int, peer: bool) -> str:
    rows: list[list[object]] = []
    for n in ns:
        for contender in names(peer):
            mine = [r for r in runs if r["n"] == n and r["contender"] == contender]
            if not mine:
                why = (
                    f"not run: about {n * latency:.0f} s; --seq-max-n {n} runs it"
                    if contender == "sequential"
                    else "not run"
                )
                rows.append([n, contender, 0, why, "-", "-", "-", "-", "-"])
                continue
            walls = [r["wall"] for r in mine]
            ratio = "-" if contender == FLOOR else _ratio(runs, n, contender, FLOOR)
            cpu = median([r["cpu"] * 1000 / max(n, 1) for r in mine])
            server = [r["server_cpu"] * 1000 / max(n, 1) for r in mine if "server_cpu" in r]
            rows.append([n, contender, len(mine), spread(walls), f"{median(walls) / latency:.2f}", ratio,
                         f"{cpu:.2f}", f"{median(server):.2f}" if server else "-",
                         f"{min(r['ok'] for r in mine)}/{n}"])  # fmt: skip
    header = ["N", "contender", "runs", "wall s median [min-max]", "wall / L", f"vs floor ({FLOOR})",
              "CPU ms / task", "of which the server's", "exact outputs"]  # fmt: skip
    return table(header, rows) + "\n\n" + targets(runs)


def _ratio(runs: list[dict[str, Any]], n: int, contender: str, base: str) -> str:
    value = _median_ratio(runs, n, contender, base)
    return "-" if value is None else f"{value:.2f}"


def _median_ratio(runs: list[dict[str, Any]], n: int, contender: str, base: str) -> float | None:
    """The median over rounds of contender's wall ÷ base's wall in the same round."""
    floor = {r["round"]: r["wall"] for r in runs if r["n"] == n and r["contender"] == base}
    ratios = [r["wall"] / floor[r["round"]] for r in runs
              if r["n"] == n and r["contender"] == contender and r["round"] in floor]  # fmt: skip
    return median(ratios) if ratios else None


def targets(runs: list[dict[str, Any]]) -> str:
    """The fan-out targets, each with what this run measured and whether it met it."""
    rows: list[list[object]] = []

    def add(what: str, value: float | None, shown: str, target: str, met: bool) -> None:
        rows.append([what, shown if value is not None else "not run", target,
                     ("met" if met else "not met") if value is not None else "-"])  # fmt: skip

    r100 = _median_ratio(runs, 100, "stdio", FLOOR)
    add("N = 100 over stdio, outputs fetched and checked, vs the fair floor", r100, f"{r100 or 0:.2f} x",
        "at most 1.05 x", (r100 or 0) <= 1.05)  # fmt: skip
    r1000 = _median_ratio(runs, 1000, "stdio", FLOOR)
    add("N = 1000, the same", r1000, f"{r1000 or 0:.2f} x", "at most 0.8 x", (r1000 or 0) <= 0.8)
    mine = [r["cpu"] * 1000 / 1000 for r in runs if r["n"] == 1000 and r["contender"] == "stdio"]
    cpu = median(mine) if mine else None
    add("N = 1000 over stdio: CPU per task, server + client", cpu, f"{cpu or 0:.2f} ms", "at most 3 ms",
        (cpu or 0) <= 3)  # fmt: skip
    for n in (100, 1000):
        durable = _median_ratio(runs, n, "stdio", "stdio-memory")
        add(f"N = {n} over stdio: the durable store's wall ÷ the memory store's", durable,
            f"{durable or 0:.3f} x", "at most 1.05 x", (durable or 0) <= 1.05)  # fmt: skip
    peer = _median_ratio(runs, 1000, "mcp-agent", "stdio")
    add(
        "N = 1000: mcp-agent's wall ÷ the server's",
        peer,
        f"{peer or 0:.2f} x",
        "at least 4 x",
        (peer or 0) >= 4,
    )
    return table(["fan-out target", "measured (median of rounds)", "target", ""], rows)


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
    parser.add_argument("--contenders", help="only these, comma-separated (e.g. gather,stdio)")
    add_contender_flags(parser, CONTENDERS)
    args = parser.parse_args()
    if ran_contender(args, CONTENDERS):
        return
    with Fake(args.latency) as fake:
        only = args.contenders.split(",") if args.contenders else None
        result = scenario(fake, [int(n) for n in args.ns.split(",")], args.rounds, args.latency, args.seq_max_n,
                          args.peer, only)  # fmt: skip
    print(result["markdown"])


if __name__ == "__main__":
    main()
