"""The ``open_engine`` fixture (registered by the conftests of the tests that use it): the engine-level
tests that take it run against both executors, the embedded one and
Temporal (a real dev server, with a worker in the test's own event loop over the test's backend, so
the tests' gates work across the activity as they do in a runner)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from server import Backend, Caller, Settings, TaskRegistry, TaskSnapshot, open_registry
from server.backends.roster import Roster
from server.config.pricing import PriceTable
from tests.server.fakes import ME
from tests.temporal_dev import DevServer

OpenEngine = Callable[[Settings, Backend], AbstractAsyncContextManager[TaskRegistry]]


@pytest.fixture(params=["embedded", "temporal"])
def open_engine(request: pytest.FixtureRequest) -> OpenEngine:
    """Open a registry over ``backend`` on the executor of the test's parameter."""
    if request.param == "embedded":
        return lambda settings, backend: open_registry(settings, backend)
    server: DevServer = request.getfixturevalue("temporal_server")
    return lambda settings, backend: _on_temporal(settings, backend, server)


@asynccontextmanager
async def _on_temporal(
    settings: Settings, backend: Backend, server: DevServer
) -> AsyncGenerator[TaskRegistry]:
    from server.executors.temporal.connection import open_temporal
    from server.executors.temporal.worker import running_worker

    queue = f"engine-{uuid.uuid4().hex[:12]}"
    update = {"executor": "temporal", "temporal_address": server.address, "task_queue": queue}
    settings = settings.model_copy(update=update)
    async with (
        open_temporal(settings) as (store, executor),
        running_worker(store.client, settings, Roster.single(backend), PriceTable.load(None)),
        open_registry(settings, backend, store=store, executor=executor) as registry,
    ):
        yield registry


async def until(
    registry: TaskRegistry, task_id: str, ok: Callable[[TaskSnapshot], bool], caller: Caller = ME
) -> TaskSnapshot:
    """The task once ``ok`` holds of it (bound it with ``fail_after``): at once on the embedded
    executor; on Temporal once the front end has read what the worker heartbeat (every half second)."""
    while True:
        await registry.select([task_id], None, caller=caller)
        if ok(snap := registry.snapshot(task_id, caller=caller)):
            return snap
        await anyio.sleep(0.05)


async def until_running(registry: TaskRegistry, task_ids: list[str], count: int) -> None:
    """Return once ``count`` of ``task_ids`` run as the registry reads them (bound it with
    ``fail_after``): at once here; on Temporal once the front end has read the workers' starts."""
    while True:
        if registry.counts(await registry.select(task_ids, None, caller=ME)).running >= count:
            return
        await anyio.sleep(0.05)
