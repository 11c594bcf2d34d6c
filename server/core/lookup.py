"""Resolving the ids a caller names into records it may see.

A task or group belongs to the principal that spawned it. Another principal's id answers exactly as an
id that never existed: the same ``UnknownTask``, the same message, and no hint that would tell the two
apart (a hint that an id is a group's is given only for a group the caller may see). An operator sees
every id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .callers import Caller
from .errors import InvalidInput, UnknownTask
from .records import GroupRecord, TaskRecord
from .table import TaskTable

MAX_IDS_PER_CALL: Final = 10_000


class Lookup:
    """Finds the records a caller may see in the table."""

    def __init__(self, table: TaskTable, retention_s: float) -> None:
        self._table = table
        self._retention_s = retention_s

    def select(self, task_ids: Sequence[str] | None, group_id: str | None, caller: Caller) -> list[str]:
        """``task_ids`` xor ``group_id`` as known task ids that ``caller`` may see (see the registry)."""
        if (task_ids is None) == (group_id is None):
            raise InvalidInput(
                "give exactly one of task_ids (a list of ids from spawn_parallel) or group_id (its "
                "group_id), not " + ("both" if task_ids is not None else "neither")
            )
        if group_id is not None:
            return [i for i in self.group(group_id, caller).task_ids if self._table.task(i) is not None]
        assert task_ids is not None
        if not task_ids:
            raise InvalidInput("task_ids is empty; pass the ids spawn_parallel returned, or a group_id")
        if len(task_ids) > MAX_IDS_PER_CALL:
            raise InvalidInput(f"task_ids has {len(task_ids)} ids; pass at most {MAX_IDS_PER_CALL} per call")
        unique = list(dict.fromkeys(task_ids))
        unknown = [task_id for task_id in unique if self.task(task_id, caller) is None]
        if unknown:
            raise UnknownTask(self.unknown_message(unknown, caller))
        return unique

    def task(self, task_id: str, caller: Caller) -> TaskRecord | None:
        """The record of a task ``caller`` may see; None for any other id, kept or not."""
        record = self._table.task(task_id)
        return record if record is not None and caller.sees(record.owner) else None

    def group(self, group_id: str, caller: Caller) -> GroupRecord:
        """The record of a group ``caller`` may see.

        Raises:
            UnknownTask: no such group, or another principal's (the same message either way).
        """
        group = self._table.group(group_id)
        if group is None or not caller.sees(group.owner):
            hint = " That is a task id: pass it in task_ids." if self.task(group_id, caller) else ""
            raise UnknownTask(
                f"no group with id {group_id!r}.{hint} Call list_tasks to see the current groups; finished "
                f"tasks are kept for {self._retention_s:g} s."
            )
        return group

    def known(self, task_ids: Sequence[str], caller: Caller) -> list[TaskRecord]:
        """The records of ``task_ids``, every one known to ``caller``.

        Raises:
            UnknownTask: one is not (any more, or never to this caller).
        """
        records = [record for i in task_ids if (record := self.task(i, caller)) is not None]
        if len(records) != len(task_ids):
            unknown = [i for i in task_ids if self.task(i, caller) is None]
            raise UnknownTask(self.unknown_message(unknown, caller))
        return records

    def unknown_message(self, unknown: list[str], caller: Caller) -> str:
        shown = ", ".join(repr(task_id) for task_id in unknown[:5])
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        hint = ""
        if any((group := self._table.group(i)) is not None and caller.sees(group.owner) for i in unknown):
            hint = " One of them is a group id: pass it as group_id instead."
        return (
            f"no task with id {shown}{more}.{hint} Call list_tasks to see the current ids; finished tasks "
            f"are kept for {self._retention_s:g} s."
        )
