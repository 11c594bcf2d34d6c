"""The ``open_engine`` fixture (registered by the conftests of the tests that use it): the engine-level
tests that take it run against both executors, the embedded one and
Temporal (a real dev server, with a worker in the test's own event loop over the test's backend, so
the tests' gates work across the activity as they do in a runner)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from server import Backend, Settings, TaskRegistry, open_registry
from server.backends.roster import Roster
from server.config.pricing import PriceTable
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
