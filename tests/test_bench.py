"""The benchmark still runs: a tiny fan-out through every contender, so that a change to the server or
the fake that breaks `bench/` fails here rather than on the next person's benchmark run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import common, scale_out

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


def test_the_scale_out_benchmark_checks_every_output_of_each_contender_and_prints_the_ratio() -> None:
    done = run_bench(
        "scale_out.py", "--tasks", "4", "--rounds", "1", "--latency", "0.05", "--probe", "0", timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    for contender in ("embedded", "temporal-1", "temporal-2"):
        assert rows[contender].rstrip(" |").endswith("| 4/4"), rows[contender]
    assert "Throughput with 2 worker processes ÷ with 1" in done.stdout
    assert "tasks/s = min(k x 1000 / W, S x 1000 / T)" in done.stdout


def test_the_expected_curve_grows_with_workers_until_the_temporal_server_bounds_it() -> None:
    measured = {"client": 1.0, "front end": 2.0, "workers": 10.0, "Temporal server": 5.0}
    assert [scale_out.curve(measured, workers, 1) for workers in (1, 2, 4)] == [100.0, 200.0, 200.0]
    assert scale_out.curve(measured, 4, 4) == 400.0


def test_the_cpu_reader_counts_a_process_and_its_children_as_the_kernel_charged_them() -> None:
    """Each process burns some CPU, prints what it used by its own account (os.times) and waits; what
    tree_cpu reads of the parent is the sum."""
    # one write each (under PIPE_BUF, so whole): print may write the number and its newline apart, and the
    # two processes share the pipe
    burn = "import os, sys; sum(i * i for i in range(2_000_000)); t = os.times(); os.write(1, f'{t.user + t.system}\\n'.encode())"
    parent = f"import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', {burn + '; sys.stdin.read()'!r}]); {burn}; sys.stdin.read(); child.wait()"
    with subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        own = [float(process.stdout.readline()), float(process.stdout.readline())]  # both now wait on stdin
        read = common.tree_cpu(process.pid)
        process.stdin.close()
    assert abs(read - sum(own)) <= 0.05, (read, own)
    assert common.tree_cpu(process.pid) == 0.0  # ended
