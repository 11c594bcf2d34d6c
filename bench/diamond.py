"""Dependencies: a diamond of four tasks (A; B and C after A; D after B and C) at latency L.

Its floor is three latencies (A, then B and C together, then D), where running the four one after
another takes four. Runs the installed server over stdio against the fake in its own process:

    .venv/bin/python bench/diamond.py [--rounds 5] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCRIPT, Fake, log, median, ready, server_env, spread, table

DIAMOND = [
    {"label": "a", "task": "lay the ground [[words:50]]"},
    {"label": "b", "task": "left [[words:50]]", "depends_on": ["a"]},
    {"label": "c", "task": "right [[words:50]]", "depends_on": ["a"]},
    {"label": "d", "task": "join [[words:50]]", "depends_on": ["b", "c"]},
]


async def run_once(url: str) -> float:
    from mcp import Client, StdioServerParameters

    async with Client(StdioServerParameters(command=str(SCRIPT), env=server_env(url))) as client:
        await ready(client)
        started = time.perf_counter()
        spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": DIAMOND})).structured_content
        while True:
            result: Any = await client.call_tool(
                "task_output", {"group_id": spawned["group_id"], "wait_s": 30}
            )
            if result.structured_content["done"]:
                break
        wall = time.perf_counter() - started
    completed = result.structured_content["counts"]["completed"]
    if completed != 4:
        raise RuntimeError(f"the diamond did not complete: {result.structured_content['counts']}")
    return wall


def scenario(fake: Fake, rounds: int, latency: float) -> dict[str, Any]:
    walls: list[float] = []
    for round_no in range(rounds):
        fake.reset()
        walls.append(asyncio.run(run_once(fake.url)))
        log(f"diamond round {round_no}: {walls[-1]:.3f} s")
    row = ["diamond of 4 over stdio", len(walls), spread(walls), f"{median(walls) / latency:.2f}",
           f"{3 * latency:g} s", f"{4 * latency:g} s"]  # fmt: skip
    header = [
        "scenario",
        "runs",
        "wall s median [min-max]",
        "wall / L",
        "floor (3 L)",
        "one after another (4 L)",
    ]
    return {"runs": [{"round": i, "wall": w} for i, w in enumerate(walls)], "markdown": table(header, [row])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()
    with Fake(args.latency) as fake:
        print(scenario(fake, args.rounds, args.latency)["markdown"])


if __name__ == "__main__":
    main()
