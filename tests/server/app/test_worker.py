"""``fanout-mcp worker``: worker processes of the installed script on a real Temporal dev server run
what front ends spawn, the installed server over stdio with the real MCP client among them, and a
worker killed mid-task loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from server import Caller, SpawnRequest, TaskRequest, TaskState
from server.app.runtime import Runtime, open_runtime
from server.config.settings import load_settings
from tests.fake_api import FakeApi
from tests.temporal_dev import DevServer
from tests.tools.cli.test_main import SCRIPT, script_env

ME = Caller.local()


def on_queue(server: DevServer, root: Path) -> list[str]:
    """The flags of a front end or worker on the dev server, on a task queue of its test's own."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    return ["--executor", "temporal", "--temporal-address", server.address, "--task-queue", queue, "--store",
            "memory", "--root", str(root)]  # fmt: skip


@contextmanager
def worker(flags: list[str], env: dict[str, str]) -> Generator[subprocess.Popen[bytes]]:
    """A worker process, stopped with SIGTERM (or found killed) at the end."""
    process = subprocess.Popen([str(SCRIPT), "worker", *flags], env=env, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGKILL)


def tasks_of(result: Any) -> dict[str, dict[str, Any]]:
    return {view["task_id"]: view for view in result.structured_content["tasks"]}


async def test_a_group_spawned_over_stdio_on_one_front_end_is_read_and_cancelled_on_another(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path
) -> None:
    flags, env = on_queue(temporal_server, tmp_path), script_env(fake_api)
    params = StdioServerParameters(command=str(SCRIPT), args=flags, env=env)
    with worker(flags, env), anyio.fail_after(120):
        async with Client(params) as one, Client(params) as two:
            spawned: Any = await one.call_tool(
                "spawn_parallel",
                {
                    "tasks": [
                        {"task": "[[hold]] a long one", "label": "long"},
                        {"task": "[[reply:short answer]]"},
                    ]
                },
            )
            group_id, ids = spawned.structured_content["group_id"], spawned.structured_content["task_ids"]
            short = tasks_of(await two.call_tool("task_output", {"task_ids": ids[1:], "wait_s": 30}))
            assert (short[ids[1]]["state"], short[ids[1]]["output"]) == ("completed", "short answer")
            assert await anyio.to_thread.run_sync(fake_api.wait_held, 1, 30)
            await two.call_tool("cancel_tasks", {"task_ids": ids[:1]})
            ended: Any = await one.call_tool("task_output", {"group_id": group_id, "wait_s": 30})
            assert ended.structured_content["done"]
            views = tasks_of(ended)
            assert [views[i]["state"] for i in ids] == ["cancelled", "completed"]
            assert views[ids[0]]["note"] == "cancelled by cancel_tasks"


async def test_a_worker_killed_mid_task_has_the_task_finished_once_by_another(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path
) -> None:
    flags, env = on_queue(temporal_server, tmp_path), script_env(fake_api)
    settings = load_settings({}, environ={**as_environment(flags), "FANOUT_ROOTS": str(tmp_path)})
    with worker(flags, env) as first, anyio.fail_after(120):
        async with open_runtime(settings) as front:
            spawn = SpawnRequest(tasks=[TaskRequest(task="[[hold:after=1]] [[reply:the whole answer]]")])
            task_id = (await front.registry.spawn(spawn, caller=ME)).tasks[0].task_id
            assert await anyio.to_thread.run_sync(fake_api.wait_held, 1, 30)
            cut_off = await usage_shown(front, task_id)  # the held call's input, heartbeat while it runs
            first.kill()  # SIGKILL: no goodbye to Temporal, whose heartbeat timeout finds out
            first.wait()
            fake_api.release()
            with worker(flags, env):
                await front.registry.wait([task_id])
                await front.registry.select([task_id], None, caller=ME)
            snap = front.registry.snapshot(task_id, caller=ME)
    assert (snap.state, snap.output, snap.attempts) == (TaskState.COMPLETED, "the whole answer", 2)
    assert len([r for r in fake_api.requests if r.path == "/v1/messages"]) == 2
    # Both calls were billed for the same prompt: the cut-off one's input is counted with the second's.
    assert snap.usage.input_tokens == 2 * cut_off > 0


async def usage_shown(front: Runtime, task_id: str) -> int:
    """The input tokens a running task's usage shows once its worker has heartbeat them (bound it)."""
    while True:
        await front.registry.select([task_id], None, caller=ME)
        if tokens := front.registry.snapshot(task_id, caller=ME).usage.input_tokens:
            return tokens
        await anyio.sleep(0.1)  # polling what another process heartbeats: no gate to wait on


def as_environment(flags: list[str]) -> dict[str, str]:
    """The settings of ``on_queue``'s flags as the environment gives them."""
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    return {
        "FANOUT_EXECUTOR": pairs["--executor"],
        "FANOUT_TEMPORAL_ADDRESS": pairs["--temporal-address"],
        "FANOUT_TASK_QUEUE": pairs["--task-queue"],
        "FANOUT_STORE": pairs["--store"],
    }


def _request(process: subprocess.Popen[bytes], request_id: int, method: str, params: dict[str, Any]) -> None:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def _answer(process: subprocess.Popen[bytes], request_id: int) -> dict[str, Any]:
    """The answer to ``request_id`` (notifications before it skipped)."""
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, "the front end closed its stdout"
        message = json.loads(line)
        if message.get("id") == request_id:
            return message


@contextmanager
def front_end(
    flags: list[str], env: dict[str, str], ending: signal.Signals
) -> Generator[subprocess.Popen[bytes]]:
    """A front end over stdio that the test speaks JSON-RPC to itself, so it can end it mid-call with
    ``ending``."""
    command = [str(SCRIPT), *flags]
    with subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        try:
            yield process
        finally:
            process.send_signal(ending)
            process.wait(timeout=60)


@pytest.mark.parametrize("ending", [signal.SIGKILL, signal.SIGTERM])
async def test_a_front_end_ended_while_it_waits_loses_nothing(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path, ending: signal.Signals
) -> None:
    flags, env = on_queue(temporal_server, tmp_path), script_env(fake_api)
    with worker(flags, env), anyio.fail_after(120):
        with front_end(flags, env, ending) as doomed:
            hello = {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            }
            _request(doomed, 1, "initialize", hello)
            await anyio.to_thread.run_sync(_answer, doomed, 1)
            tasks = {"tasks": [{"task": "[[hold]] [[reply:kept]]"}]}
            _request(doomed, 2, "tools/call", {"name": "spawn_parallel", "arguments": tasks})
            spawned = (await anyio.to_thread.run_sync(_answer, doomed, 2))["result"]["structuredContent"]
            assert await anyio.to_thread.run_sync(fake_api.wait_held, 1, 30)
            waiting = {"name": "task_output", "arguments": {"group_id": spawned["group_id"], "wait_s": 30}}
            _request(doomed, 3, "tools/call", waiting)
        # Ended while it waited on the group (killed, or shut down as a client stops it): the group is
        # Temporal's, and the worker goes on with it.
        fake_api.release()
        async with Client(StdioServerParameters(command=str(SCRIPT), args=flags, env=env)) as other:
            read: Any = await other.call_tool("task_output", {"group_id": spawned["group_id"], "wait_s": 30})
    [view] = read.structured_content["tasks"]
    assert (view["state"], view["output"]) == ("completed", "kept")
    assert len([r for r in fake_api.requests if r.path == "/v1/messages"]) == 1


async def test_a_front_end_that_cannot_read_its_group_says_backend_unavailable_until_a_worker_answers(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path
) -> None:
    flags, env = on_queue(temporal_server, tmp_path), script_env(fake_api)
    async with Client(StdioServerParameters(command=str(SCRIPT), args=flags, env=env)) as front:
        with anyio.fail_after(120):
            spawned: Any = await front.call_tool("spawn_parallel", {"tasks": [{"task": "[[reply:late]]"}]})
            ids = spawned.structured_content["task_ids"]
            # No worker polls the queue: the workflow cannot answer the front end's read of it.
            alone: Any = await front.call_tool("task_output", {"task_ids": ids, "wait_s": 0})
            with worker(flags, env):
                read: Any = await front.call_tool("task_output", {"task_ids": ids, "wait_s": 30})
    assert alone.structured_content["error"]["kind"] == "backend_unavailable", alone.structured_content
    assert "could not read group" in alone.structured_content["error"]["message"]
    [view] = read.structured_content["tasks"]
    assert (view["state"], view["output"]) == ("completed", "late")
