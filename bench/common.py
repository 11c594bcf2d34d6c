"""What every benchmark scenario shares: the fake API in its own process, fresh processes per run,
and medians.

Contenders run one per process (``python bench/<scenario>.py --contender NAME ...``), print one JSON
line, and exit, so that no run inherits another's warm pool, caches or heap.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests import source_names as source_names  # noqa: E402  (server.… and tools.… are the installed fanout_mcp modules)

PYTHON = sys.executable
SCRIPT = Path(PYTHON).with_name("fanout-mcp")
MODEL = "claude-sonnet-5-5"


class Fake:
    """The fake Messages API (tests/fake_api.py) as its own process on 127.0.0.1."""

    def __init__(self, latency: float, *extra: str) -> None:
        self.latency = latency
        self.process = subprocess.Popen(
            [PYTHON, str(REPO / "tests" / "fake_api.py"), "--port", "0", "--latency", str(latency), *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("FAKE_API_URL="):
            self.process.kill()
            raise SystemExit(f"the fake API did not start: {line!r}")
        self.url = line.split("=", 1)[1]

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if path == "stats" else "POST"
        request = urllib.request.Request(
            f"{self.url}/_fake/{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text.strip() else {}

    def reset(self, **config: Any) -> None:
        """Fresh counters, cache and rate window; the latency it started with, plus ``config``."""
        self.control("reset")
        self.control("config", {"latency": self.latency, **config})

    def stats(self) -> dict[str, Any]:
        return self.control("stats")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def __enter__(self) -> Fake:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def run_contender(script: Path, args: Sequence[str], fake: Fake, timeout: float = 1800) -> dict[str, Any]:
    """Run one contender in a fresh process pointed at the fake; its JSON line."""
    env = {**os.environ, "ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "bench-key"}
    done = subprocess.run(
        [PYTHON, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def server_env(fake_url: str, store: str = "durable") -> dict[str, str]:
    """The environment for the installed fanout-mcp, pointed at the fake. ``store``: "durable" (the
    default store, as users run it, in a new file of its own so that no history weighs on a run) or
    "memory" (``--store memory``)."""
    names = ("HOME", "PATH")
    where = "memory"
    if store != "memory":
        directory = tempfile.mkdtemp(prefix="fanout-bench-")
        atexit.register(shutil.rmtree, directory, True)
        where = str(Path(directory) / "tasks.db")
    return {**{k: os.environ[k] for k in names if k in os.environ}, "ANTHROPIC_BASE_URL": fake_url,
            "ANTHROPIC_API_KEY": "bench-key", "FANOUT_STORE": where}  # fmt: skip


async def ready(client: Any) -> None:
    """Wait until the server has opened its engine: it answers the handshake at once and loads the
    Anthropic SDK in the background, and the first tool call waits for that. A contender's own clock
    starts after its set-up (the floor imports the SDK and builds its client untimed), so the server's
    starts after this too."""
    await client.call_tool("list_tasks", {"limit": 1})


def _processes() -> Iterator[tuple[int, list[str]]]:
    """Every running process (Linux): pid and /proc stat fields after the command's name (fields[1] is
    the parent pid; utime and stime are fields 11 and 12)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        yield int(stat.parent.name), fields


def _children() -> Iterator[tuple[int, list[str]]]:
    """This process's child processes that are still running (Linux), as ``_processes``."""
    me = str(os.getpid())
    return ((pid, fields) for pid, fields in _processes() if fields[1] == me)


def _cpu_s(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds used so far by this process's child processes that are still running (Linux)."""
    return sum(_cpu_s(fields) for _, fields in _children())


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy so far, every process's (Linux: /proc/stat's user,
    nice, system, irq, softirq and steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) used so far by process ``pid`` and its descendants that
    are still running, from the kernel's own accounting of each (Linux); 0 if it has ended."""
    stats = dict(_processes())
    tree, grew = {pid}, True
    while grew:  # parents before children is not /proc's order: widen until nothing joins
        joined = {other for other, fields in stats.items() if int(fields[1]) in tree} - tree
        tree, grew = tree | joined, bool(joined)
    return sum(_cpu_s(stats[member]) for member in tree if member in stats)


def child_peak_rss_mib() -> float:
    """The peak resident memory so far (VmHWM, MiB) of this process's one running child (Linux)."""
    ((pid, _),) = list(_children())
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def rotations(names: Sequence[str], rounds: int) -> Iterable[tuple[int, list[str]]]:
    """Each round's contender order, rotated so that no contender always goes first."""
    for round_no in range(rounds):
        shift = round_no % len(names)
        yield round_no, [*names[shift:], *names[:shift]]


def spread(values: Sequence[float], digits: int = 3) -> str:
    """``median [min-max]``."""
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


Contenders = Mapping[str, Callable[[int], Coroutine[Any, Any, Any]]]


def add_contender_flags(parser: argparse.ArgumentParser, contenders: Contenders) -> None:
    """The hidden flags ``run_contender`` gives a scenario's script to run one contender."""
    parser.add_argument("--contender", choices=sorted(contenders), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)


def ran_contender(args: argparse.Namespace, contenders: Contenders) -> bool:
    """In a contender's own process: run it and print its one JSON line (True); else False."""
    if not args.contender:
        return False
    print(json.dumps(asyncio.run(contenders[args.contender](args.n))))
    return True
