"""What a retry runs again: the named tasks that ended without an answer, as one spawn request built from
the request their spawn kept, and what each re-run waits for; or a refusal that says what to do.

A re-run that depended on another task run again depends on the new copy (a position in the new
request). One that depended on a task not run again keeps depending on that task itself: a completed
one's answer joins its prompt as before, an unfinished one is waited for. A dependency that ended
without an answer and is not run again would only fail the re-run, so the retry is refused naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..intake.requests import SpawnRequest, TaskRequest
from .errors import InvalidInput
from .records import GroupRecord, TaskRecord
from .state import TaskState

#: The states of the tasks a retry leaves as they are, in the order its answer names them.
_LEFT: tuple[TaskState, ...] = (TaskState.COMPLETED, TaskState.QUEUED, TaskState.RUNNING)


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """A retry, ready to spawn."""

    request: SpawnRequest  #: the tasks run again, with their spawn's settings; depends_on: positions
    retry_of: tuple[str, ...]  #: per task of ``request``, the id of the task it runs again
    #: per task of ``request``, the tasks not run again whose answers it waits for (their records: a
    #: completed one's answer must outlive its eviction)
    outside: tuple[tuple[TaskRecord, ...], ...]
    skipped: dict[TaskState, list[str]]  #: the named tasks left as they are, by state


def plan_retry(
    records: Sequence[TaskRecord],
    task: Callable[[str], TaskRecord | None],
    group: Callable[[str], GroupRecord | None],
) -> RetryPlan:
    """The retry of ``records`` (in spawn order), looking up other tasks and groups with ``task`` and
    ``group``.

    Raises:
        InvalidInput: none of them ended without an answer; they come from several spawns, or from a
            spawn the server planned (a synthesis); or a dependency cannot be had (see the module).
    """
    skipped: dict[TaskState, list[str]] = {state: [] for state in _LEFT}
    chosen: list[TaskRecord] = []
    for record in records:
        if record.state.retryable:
            chosen.append(record)
        else:
            skipped[record.state].append(record.id)
    if not chosen:
        raise InvalidInput(_nothing_to_retry(skipped))
    spawn = _kept_request(chosen, group)
    chosen.sort(key=lambda record: record.spec.index)
    position = {record.id: n for n, record in enumerate(chosen)}
    tasks: list[TaskRequest] = []
    outside: list[tuple[TaskRecord, ...]] = []
    for record in chosen:
        inside: list[str | int] = [position[d] for d in record.depends_on if d in position]
        outside.append(
            tuple(_kept_dependency(record, d, task) for d in record.depends_on if d not in position)
        )
        tasks.append(spawn.tasks[record.spec.index].model_copy(update={"depends_on": inside}))
    request = spawn.model_copy(update={"tasks": tasks})
    return RetryPlan(request, tuple(record.id for record in chosen), tuple(outside), skipped)


def _nothing_to_retry(skipped: dict[TaskState, list[str]]) -> str:
    parts: list[str] = []
    if completed := len(skipped[TaskState.COMPLETED]):
        parts.append(f"{completed} completed (their answers stand: task_output reads them)")
    if unfinished := len(skipped[TaskState.QUEUED]) + len(skipped[TaskState.RUNNING]):
        parts.append(
            f"{unfinished} still queued or running (wait for them with task_output, or cancel_tasks them "
            "first)"
        )
    return (
        f"nothing to run again: {' and '.join(parts)}. retry_tasks runs again only tasks that ended "
        "failed, cancelled or interrupted."
    )


def _kept_request(chosen: Sequence[TaskRecord], group: Callable[[str], GroupRecord | None]) -> SpawnRequest:
    """The request of the one spawn the tasks to run again come from."""
    group_ids = list(dict.fromkeys(record.group_id for record in chosen))
    if len(group_ids) > 1:
        shown = ", ".join(group_ids[:5]) + (" ..." if len(group_ids) > 5 else "")
        raise InvalidInput(
            f"these tasks come from {len(group_ids)} spawns ({shown}); retry_tasks runs the tasks of one "
            "spawn at a time, with that spawn's settings: call it once per group, with its group_id or its "
            "task_ids."
        )
    kept = group(group_ids[0])
    if kept is None or kept.request is None:
        raise InvalidInput(
            f"the tasks of group {group_ids[0]} were planned by the server (a model synthesis), not spawned: "
            "call synthesize again to run a synthesis again."
        )
    return kept.request


def _kept_dependency(record: TaskRecord, dep_id: str, task: Callable[[str], TaskRecord | None]) -> TaskRecord:
    """A dependency of ``record`` that is not run again: one whose answer it can still have."""
    name = f"task {record.spec.label!r} [{record.id}]"
    dep = task(dep_id)
    if dep is None:
        raise InvalidInput(
            f"{name} depends on task {dep_id}, which is no longer kept (finished tasks are evicted after the "
            "retention time), so its answer is gone: spawn_parallel the task again with what it needs in its "
            "context."
        )
    if dep.state.retryable:
        raise InvalidInput(
            f"{name} depends on {dep.spec.label!r} [{dep.id}], which ended {dep.state.value} and is not "
            "among the tasks to run again: add its id to task_ids, or run the whole group again with "
            "group_id."
        )
    return dep
