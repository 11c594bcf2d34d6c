"""Workers of one task queue share the provider's rate: ``--task-queue-rpm`` sets Temporal's task-queue
rate limit, which the matching service keeps for all of them together; without it each worker rides
out the provider's 429s on its own, and no task is lost either way. Worker processes of the installed
script on a real dev server, against the fake Messages API with a small sliding rate window."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from server import Caller, SpawnRequest, TaskRequest, TaskState
from server.app.runtime import open_runtime
from server.config.settings import load_settings
from tests.fake_api import FakeApi
from tests.server.app.test_worker import SCRIPT, as_environment, on_queue, script_env, worker
from tests.temporal_dev import DevServer

ME = Caller.local()


def doctor(flags: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(SCRIPT), "doctor", *flags], env=env, capture_output=True, text=True, timeout=60
    )
    return done.stdout


async def test_a_workers_task_queue_rpm_becomes_the_queues_shared_limit_which_doctor_shows(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path
) -> None:
    flags, env = on_queue(temporal_server, tmp_path), script_env(fake_api)
    assert "together at most" not in await anyio.to_thread.run_sync(doctor, flags, env)
    with worker([*flags, "--task-queue-rpm", "90"], env), anyio.fail_after(60):
        said = ""
        while "1 worker(s) polling" not in said:  # the worker's first poll carries the limit
            said = await anyio.to_thread.run_sync(doctor, flags, env)
    assert "1 worker(s) polling, together at most 90 subagent calls a minute" in said, said


@pytest.mark.parametrize("shared_rpm", [None, 120], ids=["each-worker-alone", "queue-rate-shared"])
async def test_two_workers_under_the_providers_rate_limit_finish_every_task_once(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path, shared_rpm: int | None
) -> None:
    fake_api.config.rpm_limit, fake_api.config.rate_window_s = 6, 1.0  # 6 requests in any second
    flags, env = on_queue(temporal_server, tmp_path), script_env(fake_api)
    settings = load_settings({}, environ={**as_environment(flags), "FANOUT_ROOTS": str(tmp_path)})
    on_workers = [*flags, "--task-queue-rpm", str(shared_rpm)] if shared_rpm else flags
    with worker(on_workers, env), worker(on_workers, env), anyio.fail_after(120):
        async with open_runtime(settings) as front:
            tasks = [TaskRequest(task=f"[[reply:answer {n}]]") for n in range(20)]
            ids = [
                view.task_id
                for view in (await front.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks
            ]
            await front.registry.wait(ids)
            await front.registry.select(ids, None, caller=ME)
            ended = [front.registry.snapshot(task_id, caller=ME) for task_id in ids]
    assert [(snap.state, snap.output) for snap in ended] == [
        (TaskState.COMPLETED, f"answer {n}") for n in range(20)
    ]
    statuses = fake_api.stats().statuses
    assert statuses.get(200) == 20  # each task asked of the provider once successfully: none twice
    if shared_rpm:
        # 2 a second handed out to both workers together: never over the provider's 6 in a second.
        assert statuses.get(429, 0) == 0, statuses
    else:
        # Both workers sent at once, the provider refused, and each worker's back-off rode it out.
        assert statuses.get(429, 0) > 0, statuses
