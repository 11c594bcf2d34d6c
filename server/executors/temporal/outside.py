"""The activity that waits for a task of another group: a retried task may depend on a task outside its
retry that has not ended yet (``retry_tasks`` of a task whose dependency still runs), and a workflow
cannot read another workflow; an activity can. It reads that task's workflow every ``POLL_S`` (its
``view`` query, or its result once it has finished), heartbeating, until the task has ended.
"""

from __future__ import annotations

from typing import Final

import anyio
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from ...core.state import TaskState
from . import wire

POLL_S: Final = 1.0


@activity.defn(name=wire.AWAIT_ACTIVITY)
async def await_task(task_id: str) -> wire.TaskEnd:
    """How ``task_id`` (of another group) ended, once it has. Cancelled by its workflow's cancel."""
    group_id = wire.group_of(task_id)
    if group_id is None:
        return wire.TaskEnd(TaskState.INTERRUPTED.value, note=f"{task_id} is no task of this engine")
    handle: WorkflowHandle[object, wire.GroupView] = activity.client().get_workflow_handle(
        group_id, result_type=wire.GroupView
    )
    seen = 0  #: the group's ends read so far, none of them the task's: a read carries only later ones
    while True:
        activity.heartbeat()
        end, seen = await _end_of(handle, task_id, seen)
        if end is not None:
            return end
        await anyio.sleep(POLL_S)


async def _end_of(
    handle: WorkflowHandle[object, wire.GroupView], task_id: str, seen: int
) -> tuple[wire.TaskEnd | None, int]:
    """How the task ended (None: not yet), and how many of its group's tasks have ended."""
    described = await handle.describe()
    if described.status is WorkflowExecutionStatus.COMPLETED:
        view = await handle.result()
    elif described.status is WorkflowExecutionStatus.RUNNING:
        view = await handle.query("view", wire.ViewAsk(ended_seen=seen), result_type=wire.GroupView)
    else:
        status = described.status.name.lower() if described.status else "unknown"
        note = f"its workflow ended {status} in Temporal"
        return wire.TaskEnd(TaskState.INTERRUPTED.value, note=note), seen
    task = next((task for task in view.tasks if task.task_id == task_id), None)
    if task is None:
        return wire.TaskEnd(TaskState.INTERRUPTED.value, note="its workflow does not hold it"), seen
    return task.end, view.ended
