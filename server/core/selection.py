"""How a call names its tasks (``task_ids`` xor ``group_id``), and what an unknown id is told: the checks
and messages of ``TaskRegistry.select``, apart from its lookups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .errors import InvalidInput, UnknownTask

MAX_IDS_PER_CALL: Final = 10_000


def check_selector(task_ids: Sequence[str] | None, group_id: str | None) -> None:
    """Raises InvalidInput unless exactly one of them is given, and a list is neither empty nor too long."""
    if (task_ids is None) == (group_id is None):
        raise InvalidInput(
            "give exactly one of task_ids (a list of ids from spawn_parallel) or group_id (its "
            "group_id), not " + ("both" if task_ids is not None else "neither")
        )
    if task_ids is None:
        return
    if not task_ids:
        raise InvalidInput("task_ids is empty; pass the ids spawn_parallel returned, or a group_id")
    if len(task_ids) > MAX_IDS_PER_CALL:
        raise InvalidInput(f"task_ids has {len(task_ids)} ids; pass at most {MAX_IDS_PER_CALL} per call")


def unknown_group(group_id: str, *, is_a_task: bool, retention_s: float) -> UnknownTask:
    hint = " That is a task id: pass it in task_ids." if is_a_task else ""
    return UnknownTask(
        f"no group with id {group_id!r}.{hint} Call list_tasks to see the current groups; finished "
        f"tasks are kept for {retention_s:g} s."
    )


def unknown_tasks(unknown: Sequence[str], *, one_is_a_group: bool, retention_s: float) -> UnknownTask:
    shown = ", ".join(repr(task_id) for task_id in unknown[:5])
    more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
    hint = " One of them is a group id: pass it as group_id instead." if one_is_a_group else ""
    return UnknownTask(
        f"no task with id {shown}{more}.{hint} Call list_tasks to see the current ids; finished tasks "
        f"are kept for {retention_s:g} s."
    )
