"""A worker: runs the group workflows and the subagent activities of the settings' task queue, with
the backends it is given (``fanout-mcp worker``, or a server with ``--worker``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from ...backends.roster import Roster
from ...config.pricing import PriceTable
from ...config.settings import Settings
from .activities import SubagentActivities
from .workflows import FanoutGroup

#: the most a running activity's heartbeats (its partial output, a cancel) wait to be sent
HEARTBEAT_THROTTLE_S = 1.0


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
        # A heartbeat carries a task's partial output out and a cancel in: the SDK's default throttle
        # (80% of the heartbeat timeout, 8 s) would leave both that far behind.
        max_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_THROTTLE_S),
    )
    async with worker:
        yield worker
