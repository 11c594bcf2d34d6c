"""Scenario 4, prompt cache: 20 tasks share about 20,000 tokens of context.

The fake simulates the cache as the API documents it: a prefix marked with cache_control becomes
readable only once the response that wrote it has begun. Billed input is counted as the issue prices
it: input + 1.25 x cache writes + 0.1 x cache reads (tokens).

Contenders, each in a fresh process:
  no-cache   plain gather, the shared context as a plain system prompt (no cache_control)
  all-at-once  plain gather with cache_control on the shared context, every task started together
  server     the installed fanout-mcp over stdio (shared_context: cached, one task first, the others
             when its answer begins)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MODEL,
    SCRIPT,
    Contenders,
    Fake,
    add_contender_flags,
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

if TYPE_CHECKING:
    from anthropic.types import TextBlockParam

TASKS = 20
SHARED = (
    "The shop's coding conventions, architecture notes and review checklist, repeated. " * 1_000
)  # ~20k tokens


def billed(usage: dict[str, int]) -> float:
    return usage["input_tokens"] + 1.25 * usage["cache_write_tokens"] + 0.1 * usage["cache_read_tokens"]


async def run_gather(n: int, cached: bool) -> dict[str, Any]:
    import anthropic

    client = anthropic.AsyncAnthropic()
    block: TextBlockParam = {"type": "text", "text": SHARED}
    if cached:
        block["cache_control"] = {"type": "ephemeral"}
    totals = {"input_tokens": 0, "cache_write_tokens": 0, "cache_read_tokens": 0}

    async def one(i: int) -> None:
        message = await client.messages.create(
            model=MODEL,
            max_tokens=256,
            system=[block],
            messages=[{"role": "user", "content": f"[[words:50]] part {i}"}],
        )
        totals["input_tokens"] += message.usage.input_tokens
        totals["cache_write_tokens"] += message.usage.cache_creation_input_tokens or 0
        totals["cache_read_tokens"] += message.usage.cache_read_input_tokens or 0

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - started
    await client.close()
    return {"wall": wall, "usage": totals}


async def run_server(n: int) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=str(SCRIPT), env=server_env(os.environ["ANTHROPIC_BASE_URL"]))
    async with Client(params) as client:
        await ready(client)
        tasks = [{"task": f"[[words:50]] part {i}", "max_tokens": 256} for i in range(n)]
        started = time.perf_counter()
        spawned: Any = (
            await client.call_tool("spawn_parallel", {"tasks": tasks, "shared_context": SHARED})
        ).structured_content
        while True:
            result: Any = await client.call_tool(
                "task_output", {"group_id": spawned["group_id"], "wait_s": 30, "max_chars": 1}
            )
            if result.structured_content["done"]:
                break
        wall = time.perf_counter() - started
    usage = result.structured_content["usage"]
    return {
        "wall": wall,
        "usage": {k: usage[k] for k in ("input_tokens", "cache_write_tokens", "cache_read_tokens")},
    }


CONTENDERS: Contenders = {
    "no-cache": lambda n: run_gather(n, cached=False),
    "all-at-once": lambda n: run_gather(n, cached=True),
    "server": run_server,
}


def scenario(fake: Fake, rounds: int, tasks: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for round_no, order in rotations(list(CONTENDERS), rounds):
        for contender in order:
            fake.reset()  # an empty cache for every run
            result = run_contender(Path(__file__), ["--contender", contender, "--n", str(tasks)], fake)
            runs.append(
                {"round": round_no, "contender": contender, "billed": billed(result["usage"]), **result}
            )
            log(
                f"cache round {round_no} {contender}: {result['wall']:.2f} s, billed {runs[-1]['billed']:.0f}"
            )
    base = {r["round"]: r["billed"] for r in runs if r["contender"] == "no-cache"}
    eager = {r["round"]: r for r in runs if r["contender"] == "all-at-once"}
    rows: list[list[object]] = []
    for contender in CONTENDERS:
        mine = [r for r in runs if r["contender"] == contender]
        usage = mine[0]["usage"]
        vs_none = [r["billed"] / base[r["round"]] for r in mine]
        vs_eager = [r["billed"] / eager[r["round"]]["billed"] for r in mine]
        extra = [r["wall"] - eager[r["round"]]["wall"] for r in mine]
        rows.append([contender, len(mine), usage["input_tokens"], usage["cache_write_tokens"], usage["cache_read_tokens"],
                     f"{median([r['billed'] for r in mine]):.0f}", f"{median(vs_none):.3f}", f"{median(vs_eager):.3f}",
                     spread([r["wall"] for r in mine], 2), f"{median(extra):+.2f}"])  # fmt: skip
    header = ["contender", "runs", "input tokens", "cache writes", "cache reads", "billed input units",
              "vs no cache", "vs all-at-once", "wall s", "wall vs all-at-once s"]  # fmt: skip
    return {"runs": runs, "markdown": table(header, rows)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--latency", type=float, default=1.0)
    add_contender_flags(parser, CONTENDERS)
    args = parser.parse_args()
    if ran_contender(args, CONTENDERS):
        return
    with Fake(args.latency) as fake:
        print(scenario(fake, args.rounds, args.tasks)["markdown"])


if __name__ == "__main__":
    main()
