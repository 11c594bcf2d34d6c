"""A worker: runs the group workflows and the subagent activities of the settings' task queue, with
the backends it is given (``fanout-mcp worker``, or a server with ``--worker``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import PollerBehaviorAutoscaling, Worker

from ...backends.roster import Roster
from ...config.pricing import PriceTable
from ...config.settings import Settings
from .activities import SubagentActivities
from .outside import await_task
from .workflows import FanoutGroup

#: the most a running activity's heartbeats (its partial output, a cancel) wait to be sent
HEARTBEAT_THROTTLE_S = 1.0
_EAGER_ACTIVITIES = 100  #: a spawn's default most tasks (max_tasks_per_spawn)


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, roster: Roster, prices: PriceTable
) -> AsyncGenerator[Worker, None]:
    """Run a worker while inside; on exit it stops taking work and lets its running activities go
    (Temporal gives them to another worker)."""
    rate = settings.task_queue_rpm
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[FanoutGroup],
        activities=[SubagentActivities(roster, prices).run_subagent, await_task],
        max_concurrent_activities=settings.max_concurrency,
        # A heartbeat carries a task's partial output out and a cancel in: the SDK's default throttle
        # (80% of the heartbeat timeout, 8 s) would leave both that far behind.
        max_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_THROTTLE_S),
        # A spawn's tasks start together: the worker that runs the workflow takes as many of their
        # activities as it can at once (eagerly, without a round trip through the server's queue), and
        # polls for more with as many pollers as the queue keeps busy. 100 tasks on the dev server here:
        # 2.8 s from spawn to the last answer instead of 4-5 s, and half the CPU a task.
        max_eager_activity_reservations_per_workflow_task=_EAGER_ACTIVITIES,
        # The provider's rate is the account's, shared by every worker: Temporal's matching service
        # hands the queue's activities out at this rate to all its workers together. An activity started
        # eagerly is handed to the workflow's own worker without that queue's dispatch, so with a limit
        # none is (the limit held with eager starts too in a test here, but nothing documents it).
        max_task_queue_activities_per_second=rate / 60 if rate is not None else None,
        disable_eager_activity_execution=rate is not None,
        activity_task_poller_behavior=PollerBehaviorAutoscaling(),
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
    )
    async with worker:
        yield worker
