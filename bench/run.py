"""The benchmark: every scenario against the fake Messages API in its own process on 127.0.0.1, each
scenario's contenders alternating round by round, medians and ratios. Writes a markdown report and the
raw runs as JSON (bench/results/latest.md and latest.json unless --out says otherwise).

    .venv/bin/python bench/run.py            # everything (about 19 minutes; installs the mcp-agent peer
                                             # into bench/peer/.venv the first time, from PyPI)
    .venv/bin/python bench/run.py --quick    # every scenario, smaller (under a minute); no peer

Scenarios: 1 fan-out (N = 1, 10, 100, 1000; sequential, plain gather, the engine, the server over stdio,
mcp-agent), 2 overhead (spawn latency, task_output round trip, memory and CPU per task), 3 rate limit,
4 prompt cache, 5 the tool list's size, 6 scale (10,000 tasks in one spawn, 100 tasks on the default
settings, task_output's round trip against a trivial tool's), 7 scale out (one spawn through the embedded
engine and through 1 and 2 Temporal workers, on a dev server of its own; skipped without the temporal
extra), the dependency diamond, and start-up (--version, --help, the handshake's answer).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cache
import diamond
import fanout
import overhead
import ratelimit
import scale
import scale_out
import startup
import toollist
from common import PYTHON, REPO, Fake, log

PEER_SETUP = Path(__file__).resolve().parent / "peer" / "setup.py"
QUICK_SCALE_OUT = 20  #: tasks in --quick's scale-out spawn


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = f"{len(names)} x {names[0]}" if names else cpu
    return f"{platform.system()} {platform.machine()}, {cpu}, Python {platform.python_version()}"


def peer_ready(wanted: bool) -> tuple[bool, str]:
    if not wanted:
        return False, "not run (--quick or --no-peer)"
    done = subprocess.run([PYTHON, str(PEER_SETUP)], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        return (
            False,
            f"could not be installed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'setup failed'}",
        )
    return True, "mcp-agent 0.2.6 with mcp 1.30.0 and anthropic 1.17.0 (its newest release needs those pins)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every scenario, smaller: under a minute")
    parser.add_argument("--no-peer", action="store_true", help="leave mcp-agent out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest")
    args = parser.parse_args()
    quick = args.quick
    started = time.perf_counter()
    peer, peer_note = peer_ready(not (quick or args.no_peer))
    latency = 1.0
    report: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                              "quick": quick, "latency_s": latency, "peer": peer_note, "scenarios": {}}  # fmt: skip
    with Fake(latency) as fake:
        ns = [100] if quick else [1, 10, 100, 1000]
        report["scenarios"]["fanout"] = fanout.scenario(
            fake, ns, 1 if quick else args.rounds, latency, seq_max_n=0 if quick else 100, peer=peer
        )
        report["scenarios"]["overhead"] = overhead.scenario(
            fake, 2 if quick else 5, 2_000 if quick else 10_000
        )
        tasks, limit, window = (60, 15, 1.0) if quick else (300, 50, 3.0)
        report["scenarios"]["ratelimit"] = ratelimit.scenario(fake, 1 if quick else 2, tasks, limit, window)
        report["scenarios"]["cache"] = cache.scenario(fake, 1 if quick else args.rounds, cache.TASKS)
        report["cache_tasks"] = cache.TASKS
        report["scenarios"]["diamond"] = diamond.scenario(fake, 1 if quick else args.rounds, latency)
        report["scenarios"]["scale"] = scale.scenario(
            fake, 1 if quick else args.rounds, 1_000 if quick else 10_000
        )
        # Two rounds at most: each Temporal run of 2,000 tasks takes about half a minute here.
        try:
            report["scenarios"]["scale_out"] = scale_out.scenario(
                fake, 1 if quick else min(args.rounds, 2), QUICK_SCALE_OUT if quick else scale_out.FULL_TASKS
            )
        except RuntimeError as exc:  # a run that failed or hung: said, and the rest of the report kept
            log(f"scale out failed: {exc}")
            report["scenarios"]["scale_out"] = {"markdown": f"Not measured: a run failed.\n\n```\n{exc}\n```"}
    report["scenarios"]["toollist"] = toollist.scenario()  # a size, the same in --quick
    report["scenarios"]["startup"] = startup.scenario(3 if quick else 7)
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    markdown = render(report, tasks, limit, window)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)
    log(f"wrote {args.out.with_suffix('.md')} and .json in {report['seconds']} s")


def render(report: dict[str, Any], tasks: int, limit: int, window: float) -> str:
    s = report["scenarios"]
    return f"""\
# Benchmark results{" (--quick)" if report["quick"] else ""}

Measured {report["when"]} on {report["machine"]}, {report["seconds"]} s in all. The fake Messages API
runs in its own process on 127.0.0.1 with latency L = {report["latency_s"]:g} s before the first byte;
every contender runs in a fresh process; medians [min-max] over rounds; ratios are taken round by round.

## 1. Fan-out (200 streamed output tokens per task)

mcp-agent: {report["peer"]}.

{s["fanout"]["markdown"]}

## 2. Overhead

{s["overhead"]["markdown"]}

## 3. Rate limit ({tasks} tasks; the fake admits {limit} requests per {window:g} s sliding window, 429 + retry-after beyond)

{s["ratelimit"]["markdown"]}

## 4. Prompt cache ({cache.TASKS} tasks sharing about 20,000 tokens; billed input = input + 1.25 x writes + 0.1 x reads)

{s["cache"]["markdown"]}

## 5. Tool list (what a client puts in its model's prompt, and the whole tools/list)

{s["toollist"]["markdown"]}

## 6. Scale, the default settings, and one look (L = 1 s; every output fetched and checked)

{s["scale"]["markdown"]}

## 7. Scale out (one spawn: the embedded engine, and Temporal with 1 and 2 worker processes)

{s["scale_out"]["markdown"]}

## Dependencies (a diamond of four tasks)

{s["diamond"]["markdown"]}

## Start-up (each measure in a fresh process; the handshake from process start to its answer)

{s["startup"]["markdown"]}
"""


if __name__ == "__main__":
    main()
