"""The benchmark still runs: a tiny fan-out through every contender, so that a change to the server or
the fake that breaks `bench/` fails here rather than on the next person's benchmark run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """One of bench/'s scripts, run as its README says, from the repository; its output."""
    command = [sys.executable, str(REPO / "bench" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO)


def test_the_fanout_benchmark_runs_every_contender_to_completion() -> None:
    done = run_bench("fanout.py", "--ns", "2", "--rounds", "1", "--latency", "0.05", timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 2 |")]
    contenders = {row.split("|")[2].strip(): row for row in rows}
    assert set(contenders) >= {
        "sequential",
        "gather-aiohttp",
        "gather",
        "gather-helper",
        "gather-nostream",
        "engine",
        "stdio",
    }
    for name, row in contenders.items():
        assert row.rstrip(" |").endswith("2/2"), f"{name}: {row}"


def test_the_tool_list_benchmark_prints_both_sizes_within_their_targets() -> None:
    done = run_bench("toollist.py", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if "at most" in line]
    assert len(rows) == 2 and all(row.rstrip(" |").endswith("| met") for row in rows), done.stdout


def test_the_startup_benchmark_measures_every_path_and_says_met_or_not() -> None:
    done = run_bench("startup.py", "--rounds", "1", timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    for measure in ("version", "help", "initialize", "discover"):
        assert rows[measure].rstrip(" |").endswith(("| met", "| not met")), rows[measure]
    assert "tools/list" in rows
    assert "| serve |" in done.stdout and "| --version |" in done.stdout  # the slowest imports


def test_the_scale_benchmark_checks_every_output_and_says_met_or_not() -> None:
    done = run_bench("scale.py", "--rounds", "1", "--tenk", "30", "--latency", "0.05", timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "target" not in line]
    assert "| 30 / 30 |" in rows[0], rows[0]  # every one of the big spawn's outputs came back exact
    assert "(every output checked: 100/100" in done.stdout
    assert all(row.rstrip(" |").endswith(("| met", "| not met", "| -")) for row in rows), done.stdout
    assert any("trivial tool" in row for row in rows)
