"""Stop signals against the installed ``fanout-mcp``: real processes, real signals, stdin held open."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from server import FanoutError
from tests.fake_api import FakeApi
from tests.server.backends import fake_clis
from tests.server.backends.fake_clis import is_gone, read_pids
from tests.tools.served import SCRIPT, command_line, env_for, read_until, running, served
from tools.cli.signals import Stopped, until_signalled

pytestmark = pytest.mark.anyio


@pytest.fixture
def family(tmp_path: Path) -> Path:
    """A configuration file with one command, ``family`` (see ``fake_clis.FAMILY``), whose four processes
    write their pids to ``tmp_path/pids``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = fake_clis.install(bin_dir, "family", fake_clis.FAMILY)
    config = tmp_path / "fanout.toml"
    config.write_text(
        f"[commands.family]\nargv = [{json.dumps(str(program))}, {json.dumps(str(tmp_path / 'pids'))}]\n"
        "grace_s = 1\n"
    )
    return config


async def started_family(pid_file: Path) -> list[int]:
    """The supervisor and the four processes of the family, once all are up. Polled, bounded: the
    processes are outside facts with no event to wait on."""
    with anyio.fail_after(30):
        while True:
            if (processes := family_up(pid_file)) is not None:
                return processes
            await anyio.sleep(0.05)


async def written_pids(pid_file: Path, count: int) -> list[int]:
    """The first ``count`` pids written to ``pid_file``, once they are. Polled, bounded, as above."""
    with anyio.fail_after(30):
        while True:
            pids = pids_in(pid_file)
            if len(pids) >= count:
                return pids[:count]
            await anyio.sleep(0.05)


def pids_in(pid_file: Path) -> list[int]:
    return read_pids(pid_file) if pid_file.exists() else []


def family_up(pid_file: Path) -> list[int] | None:
    pids = read_pids(pid_file) if pid_file.exists() else []
    return [fake_clis.parent_of(pids[0]), *pids] if len(pids) == 4 else None


async def all_gone(pids: list[int]) -> None:
    with anyio.fail_after(5):
        while True:
            if all(is_gone(pid) for pid in pids):
                return
            await anyio.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
async def test_a_signal_ends_the_server_and_every_process_its_tasks_started(
    family: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    argv = command_line("--config", str(family), "--root", str(tmp_path))

    async with served(argv, env_for(tmp_path)) as server:
        await server.call_tool("spawn_parallel", {"tasks": [{"task": "x", "backend": "family"}]})
        processes = await started_family(tmp_path / "pids")
        os.kill(server.pid, signum)
        with anyio.fail_after(15):
            status = await server.exit_status()
            stderr = await server.stderr()

    assert status == (-signal.SIGKILL if signum is signal.SIGKILL else 0), stderr
    assert "Traceback" not in stderr
    if signum is not signal.SIGKILL:
        assert f"{signum.name}: stopping" in stderr
    await all_gone(
        processes
    )  # the supervisor, the CLI, its child, its grandchild and the one in its own session


async def test_cancel_tasks_ends_every_process_the_task_started_the_one_in_its_own_session_too(
    family: Path, tmp_path: Path
) -> None:
    argv = command_line("--config", str(family), "--root", str(tmp_path))

    async with served(argv, env_for(tmp_path)) as server:
        spawned = await server.call_tool("spawn_parallel", {"tasks": [{"task": "x", "backend": "family"}]})
        processes = await started_family(tmp_path / "pids")
        cancelled = await server.call_tool("cancel_tasks", {"group_id": spawned["group_id"]})
        await all_gone(processes)
        listed = await server.call_tool("list_tasks", {})  # and the server goes on serving

    assert cancelled["cancelled"] == spawned["task_ids"]
    assert listed["counts"]["cancelled"] == 1


async def test_a_signal_stops_a_plan_run_which_prints_what_finished_and_exits_128_plus_its_number(
    family: Path, tmp_path: Path, fake_api: FakeApi
) -> None:
    plan = tmp_path / "plan.json"
    tasks = [
        {"label": "quick", "task": "[[reply:the quick answer]]"},
        {"label": "slow", "task": "x", "backend": "family"},
    ]
    plan.write_text(json.dumps({"tasks": tasks, "synthesis": {"mode": "merge"}}))
    argv = [str(SCRIPT), "run", str(plan), "--config", str(family), "--root", str(tmp_path)]
    env = env_for(tmp_path, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=fake_api.base_url)

    async with running(argv, env) as process:
        assert process.stderr is not None and process.stdout is not None
        processes = await started_family(tmp_path / "pids")
        stderr = bytearray()
        with anyio.fail_after(30):
            await read_until(process.stderr, "quick: completed", stderr)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(15):
            stdout = b"".join([chunk async for chunk in process.stdout]).decode()
            status = await process.wait()
            stderr += b"".join([chunk async for chunk in process.stderr])

    assert status == 128 + signal.SIGINT
    said = stderr.decode()
    assert "stopped by SIGINT: cancelling the unfinished tasks" in said and "Traceback" not in said
    assert "> stopped by SIGINT: 1 of 2 task(s) completed" in stdout
    assert "## quick [" in stdout and "the quick answer" in stdout
    assert "## slow [" in stdout and "(cancelled;" in stdout
    assert "# Synthesis (merge)" in stdout
    await all_gone(processes)


async def test_a_second_signal_exits_a_stopping_run_at_once(tmp_path: Path) -> None:
    """The run waits for an agent CLI that ignores SIGTERM for its grace of 60 s; the second SIGINT does
    not: the process exits 130 at once. The CLI's supervisor, told of its parent's death by the kernel,
    ends what is left after the grace."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = fake_clis.install(bin_dir, "hang", fake_clis.HANG)
    pid_file = tmp_path / "pids"
    config = tmp_path / "fanout.toml"
    config.write_text(
        f'[commands.hang]\nargv = [{json.dumps(str(program))}, {json.dumps(str(pid_file))}, "ignore-term"]\n'
        "grace_s = 60\n"
    )
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"tasks": [{"task": "x", "backend": "hang"}]}))
    argv = [str(SCRIPT), "run", str(plan), "--config", str(config), "--root", str(tmp_path)]

    leftovers: list[int] = []
    try:
        async with running(argv, env_for(tmp_path)) as process:
            assert process.stderr is not None and process.stdout is not None
            leftovers += await written_pids(pid_file, 3)
            leftovers.append(fake_clis.parent_of(leftovers[0]))  # the supervisor
            process.send_signal(signal.SIGINT)
            stderr = bytearray()
            with anyio.fail_after(30):
                await read_until(process.stderr, "cancelling the unfinished tasks", stderr)
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(20):  # far less than the grace the first signal's shutdown waits
                status = await process.wait()
                stderr += b"".join([chunk async for chunk in process.stderr])
                stdout = b"".join([chunk async for chunk in process.stdout])
    finally:
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    assert status == 128 + signal.SIGINT
    said = stderr.decode()
    assert "SIGINT again: exiting at once" in said and "Traceback" not in said
    assert stdout == b""


async def test_until_signalled_returns_what_the_work_returns_and_raises_its_error_as_it_is() -> None:
    async def answer() -> int:
        return 42

    async def fail() -> None:
        raise FanoutError("no such plan")

    assert await until_signalled(answer) == 42
    with pytest.raises(FanoutError, match="no such plan"):  # not wrapped in an exception group
        await until_signalled(fail)


async def test_a_stop_signal_cancels_the_work_lets_its_shutdown_finish_then_raises_stopped() -> None:
    shut_down: list[str] = []

    async def work() -> None:
        try:
            os.kill(os.getpid(), signal.SIGHUP)  # to this process, where until_signalled catches it
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()  # the shutdown may await
                shut_down.append("done")

    with anyio.fail_after(10), pytest.raises(Stopped) as caught:
        await until_signalled(work)

    assert caught.value.signum is signal.SIGHUP and caught.value.exit_status == 129
    assert shut_down == ["done"]
