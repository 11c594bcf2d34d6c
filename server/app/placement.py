"""Where tasks run and are kept: the embedded executor over the settings' store (memory or the durable
file), or Temporal (``--executor temporal``), imported only then so the default needs no ``temporalio``."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass

from ..backends.roster import Roster
from ..config.pricing import PriceTable
from ..config.settings import Settings
from ..core.durable.opening import open_store
from ..core.errors import BackendUnavailable
from ..core.executor import ExecutorFactory
from ..core.runner import Runner
from ..core.store import TaskStore

#: a worker of the placement's tasks in this process, over its backends, while inside (or nothing)
WorkerOpener = Callable[[Roster, PriceTable], AbstractAsyncContextManager[object]]


@dataclass(frozen=True, slots=True)
class Placement:
    store: TaskStore
    executor: ExecutorFactory
    worker: WorkerOpener


def _no_worker(roster: Roster, prices: PriceTable) -> AbstractAsyncContextManager[object]:
    return nullcontext()


def require_temporal() -> None:
    """Check that the Temporal SDK is installed.

    Raises:
        BackendUnavailable: ``temporalio`` is not installed (the message says how to install it).
    """
    if importlib.util.find_spec("temporalio") is None:
        raise BackendUnavailable(
            "--executor temporal needs the Temporal SDK: pip install 'fanout-mcp[temporal]'"
        )


@asynccontextmanager
async def open_placement(settings: Settings) -> AsyncGenerator[Placement, None]:
    """The store and executor of the settings, and the worker of ``--worker``.

    Raises:
        StoreUnavailable: the task store cannot be used.
        BackendUnavailable: Temporal cannot be reached.
    """
    if settings.executor == "embedded":
        async with open_store(settings) as store:
            yield Placement(store, Runner, _no_worker)
        return
    require_temporal()
    from ..executors.temporal.connection import open_temporal
    from ..executors.temporal.worker import running_worker

    async with open_temporal(settings) as (store, executor):

        def worker(roster: Roster, prices: PriceTable) -> AbstractAsyncContextManager[object]:
            if not settings.worker:
                return nullcontext()
            return running_worker(store.client, settings, roster, prices)

        yield Placement(store, executor, worker)
