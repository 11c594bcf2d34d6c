"""What a running group's workflow description says beyond its ``view``: which tasks a worker has
started (the workflow counts a task running once it asks for its activity, which may wait for a free
worker), which a cancel was asked of, and their heartbeats; and the workflow's wall-clock times on this
machine's monotonic clock."""

from __future__ import annotations

import time
from dataclasses import dataclass

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import WorkflowExecutionDescription


@dataclass(frozen=True)
class Activities:
    """What a workflow's pending activities (one per running task, its id the task's) say."""

    started: dict[str, float]  #: when a worker started each, wall clock (those waiting for one: absent)
    cancelling: frozenset[str]  #: those a cancel was asked of
    beating: list[PendingActivityInfo]  #: those with a heartbeat

    @staticmethod
    def of(described: WorkflowExecutionDescription) -> Activities:
        pending = described.raw_description.pending_activities
        waiting = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
        cancelling = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
        return Activities(
            {
                a.activity_id: a.last_started_time.ToNanoseconds() / 1e9
                for a in pending
                if a.state != waiting and a.HasField("last_started_time")
            },
            frozenset(a.activity_id for a in pending if a.state == cancelling),
            [a for a in pending if a.heartbeat_details.payloads],
        )


class Clock:
    """The wall clock of another machine (a workflow's times) on this one's monotonic clock."""

    def __init__(self) -> None:
        self._offset = time.monotonic() - time.time()

    def monotonic(self, wall: float) -> float:
        return wall + self._offset
