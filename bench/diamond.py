"""Dependency benchmark: a diamond of four tasks (A; B and C after A; D after B and C) at latency L.

Its floor is three latencies (A, then B and C together, then D), where running the four one after
another takes four. Starts the fake Messages API in its own process and runs the installed server
over stdio, several rounds:

    .venv/bin/python bench/diamond.py [--rounds 5] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import SCRIPT, start_fake

DIAMOND = [
    {"label": "a", "task": "lay the ground [[words:50]]"},
    {"label": "b", "task": "left [[words:50]]", "depends_on": ["a"]},
    {"label": "c", "task": "right [[words:50]]", "depends_on": ["a"]},
    {"label": "d", "task": "join [[words:50]]", "depends_on": ["b", "c"]},
]


async def run_once(url: str) -> float:
    from mcp import Client, StdioServerParameters

    env = {**{k: os.environ[k] for k in ("HOME", "PATH") if k in os.environ},
           "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "bench-key"}  # fmt: skip
    async with Client(StdioServerParameters(command=str(SCRIPT), env=env)) as client:
        started = time.perf_counter()
        spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": DIAMOND})).structured_content
        while True:
            result: Any = await client.call_tool(
                "task_output", {"group_id": spawned["group_id"], "wait_s": 30}
            )
            if result.structured_content["done"]:
                break
        wall = time.perf_counter() - started
        assert result.structured_content["counts"]["completed"] == 4, result.structured_content["counts"]
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()
    fake, url = start_fake(args.latency)
    try:
        walls = [asyncio.run(run_once(url)) for _ in range(args.rounds)]
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    median = statistics.median(walls)
    print(
        "| scenario | runs | wall s (median [min-max]) | wall / L | floor (3 L) | one after another (4 L) |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| diamond of 4 over stdio | {len(walls)} | {median:.3f} [{min(walls):.3f}-{max(walls):.3f}] | "
        f"{median / args.latency:.2f} | {3 * args.latency:.1f} s | {4 * args.latency:.1f} s |"
    )


if __name__ == "__main__":
    main()
