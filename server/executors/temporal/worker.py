"""A worker: runs the group workflows and the subagent activities of the settings' task queue, with
the backends it is given (``fanout-mcp worker``, or a server with ``--worker``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.worker import Worker

from ...backends.roster import Roster
from ...config.pricing import PriceTable
from ...config.settings import Settings
from .activities import SubagentActivities
from .workflows import FanoutGroup


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, roster: Roster, prices: PriceTable
) -> AsyncGenerator[Worker, None]:
    """Run a worker while inside; on exit it stops taking work and lets its running activities go
    (Temporal gives them to another worker)."""
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[FanoutGroup],
        activities=[SubagentActivities(roster, prices).run_subagent],
        max_concurrent_activities=settings.max_concurrency,
    )
    async with worker:
        yield worker
