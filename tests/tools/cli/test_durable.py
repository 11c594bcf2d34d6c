"""The installed server's tasks outlive it: a server killed mid-fan-out, and another started on the same
store, over stdio against the fake Messages API."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.fake_api import FakeApi
from tests.server.backends.fake_clis import python_runnable_by
from tests.tools.served import SCRIPT, as_nobody, command_line, env_for, served


def _env(fake: FakeApi, home: Path) -> dict[str, str]:
    return env_for(home, ANTHROPIC_BASE_URL=fake.base_url, ANTHROPIC_API_KEY="test-key")


def _store(home: Path) -> Path:
    return home / ".local" / "state" / "fanout-mcp" / "tasks.db"


async def _partials_saved(store: Path, count: int) -> None:
    """Wait until ``count`` running tasks' partial output is in the file (bound it with ``fail_after``)."""
    while True:
        with sqlite3.connect(store) as conn:
            rows = conn.execute("SELECT count(*) FROM tasks WHERE state = 'running' AND partial != ''")
            if rows.fetchone()[0] >= count:
                return
        await anyio.sleep(0.05)


async def test_a_killed_server_s_results_survive_and_its_running_tasks_end_interrupted(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    argv = [str(SCRIPT), "--root", str(tmp_path)]
    tasks: list[dict[str, Any]] = [
        {"task": "[[reply:the first answer, whole]]", "label": "done"},
        {"task": "[[words:9]] [[hold:after=2]]", "label": "held-1"},
        {"task": "[[words:9]] [[hold:after=2]]", "label": "held-2"},
    ]
    async with served(argv, _env(fake_api, home)) as first:
        spawned = await first.call_tool("spawn_parallel", {"tasks": tasks})
        group = spawned["group_id"]
        ids = [t["task_id"] for t in spawned["tasks"]]
        with anyio.fail_after(20):
            done = await first.call_tool("task_output", {"task_ids": ids[:1], "wait_s": 15})
            assert done["tasks"][0]["state"] == "completed"
            await anyio.to_thread.run_sync(fake_api.wait_held, 2, 15.0)
            await _partials_saved(_store(home), 2)
        os.kill(first.pid, signal.SIGKILL)
        with anyio.fail_after(10):
            await first.exit_status()

    fake_api.release()  # from now on nothing waits at the fake's gate
    async with served(argv, _env(fake_api, home)) as second:
        with anyio.fail_after(30):
            after = await second.call_tool("task_output", {"group_id": group, "wait_s": 0})
            resumed = await second.call_tool("retry_tasks", {"group_id": group})
            again = await second.call_tool("task_output", {"group_id": resumed["group_id"], "wait_s": 20})
    assert [t["retry_of"] for t in resumed["tasks"]] == ids[1:]
    assert again["done"] and [t["state"] for t in again["tasks"]] == ["completed", "completed"]
    by_id = {t["task_id"]: t for t in after["tasks"]}
    assert by_id[ids[0]]["output"] == done["tasks"][0]["output"] == "the first answer, whole"
    assert by_id[ids[0]]["state"] == "completed"
    for task_id in ids[1:]:
        task = by_id[task_id]
        assert task["state"] == "interrupted"
        assert task["output"] == "w1 w2 w3 w4 w5 w6"  # its two deltas (of 3 words) before the kill
        assert "ended before the task did" in task["note"]


def _start(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env_for(home), capture_output=True, text=True, timeout=60, check=False
    )


def _missing(directory: Path) -> Path:
    return directory / "missing" / "tasks.db"


def _corrupt(directory: Path) -> Path:
    path = directory / "tasks.db"
    path.write_bytes(b"not a database at all " * 200)
    return path


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (_missing, "the directory {d}/missing does not exist"),
        (_corrupt, "is not a fanout-mcp task store, or it is corrupt"),
    ],
)
def test_a_store_that_cannot_be_used_stops_the_server_at_start_naming_it(
    tmp_path: Path, make: Callable[[Path], Path], said: str
) -> None:
    path = make(tmp_path)
    done = _start("--store", str(path), home=tmp_path)
    assert done.returncode == 2
    assert str(path) in done.stderr and said.format(d=tmp_path) in done.stderr
    assert done.stdout == ""  # nothing served


def test_a_store_its_user_cannot_write_stops_the_server_at_start(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "this test runs the server as nobody: run the tests as root (CI does)"
    shared = Path(tempfile.mkdtemp(prefix="fanout-shared-"))
    try:
        shared.chmod(0o755)
        store = shared / "tasks.db"
        sqlite3.connect(store).close()  # root's file, which nobody may only read
        store.chmod(0o644)
        argv = as_nobody(
            command_line("--store", str(store), "--root", str(shared), python=python_runnable_by(65534))
        )
        done = subprocess.run(
            argv, env=env_for(shared), capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        shutil.rmtree(shared)
    assert done.returncode == 2, done.stderr
    assert f"the task store {store} cannot be written" in done.stderr


def test_doctor_reports_the_store(fake_api: FakeApi, tmp_path: Path) -> None:
    done = _start("doctor", "--root", str(tmp_path), home=tmp_path)
    line = next(line for line in done.stdout.splitlines() if line.startswith("store: "))
    assert line.startswith(f"store: {_store(tmp_path)} (0 tasks kept, ")
    assert "schema version 1" in line
    memory = _start("doctor", "--store", "memory", "--root", str(tmp_path), home=tmp_path)
    assert "store: memory (--store memory)" in memory.stdout


async def test_two_servers_on_one_store_share_history_cancel_each_other_s_tasks_and_keep_it_whole(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    store = tmp_path / "shared.db"
    argv = [str(SCRIPT), "--root", str(tmp_path), "--store", str(store), "--max-tasks", "1000"]
    env = _env(fake_api, tmp_path)
    many = [{"task": f"[[words:5]] part {i}"} for i in range(1000)]
    async with served(argv, env) as one, served(argv, env) as two:
        with anyio.fail_after(120):
            groups = [
                (await one.call_tool("spawn_parallel", {"tasks": many}))["group_id"],
                (await two.call_tool("spawn_parallel", {"tasks": many}))["group_id"],
            ]
            for server, group in ((one, groups[0]), (two, groups[1])):
                await _until_done(server, group)
            held = await one.call_tool("spawn_parallel", {"tasks": [{"task": "[[hold]]", "label": "held"}]})
            await anyio.to_thread.run_sync(fake_api.wait_held, 1, 15.0)
            # the other server reads the first one's group, and cancels its running task
            theirs = await two.call_tool("task_output", {"group_id": groups[0], "include": "status"})
            assert theirs["counts"]["completed"] == 1000
            cancelled = await two.call_tool("cancel_tasks", {"group_id": held["group_id"]})
            assert cancelled["counts"]["cancelled"] == 1  # its owner did it within the grace
            listed = await one.call_tool("list_tasks", {"limit": 1})
            assert listed["total"] == 2001
            assert listed["counts"]["completed"] == 2000 and listed["counts"]["cancelled"] == 1
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def _until_done(server: Any, group: str) -> None:
    while not (await server.call_tool("task_output", {"group_id": group, "include": "status"}))["done"]:
        pass
