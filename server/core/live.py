"""What an unfinished task holds besides its record: the live objects no store could keep.

The table keeps one ``Live`` per unfinished task and drops it, all at once, when the task ends: the
request with its file texts, the cancel scope, the backend and the gates are then gone, and the ended
task is its record alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from ..intake.prepare import PlannedTask
from .progress import Progress
from .records import TaskRecord


@dataclass(slots=True, eq=False)
class Live:
    """One unfinished task's live part. Written at registration, except the two noted."""

    task_id: str
    group_id: str
    planned: PlannedTask  #: its request, the prompt not yet written, and its backend
    held_bytes: int  #: what ``planned`` holds of its own (the spawn's shared part is apart)
    #: made at registration, before the runner starts, so that cancelling a queued task works
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    #: the tasks that must complete before this one starts: their records, held so that their answers
    #: outlive their eviction (a task may wait long for a slot once they completed)
    deps: tuple[TaskRecord, ...] = ()
    warm_gate: anyio.Event | None = None  #: wait for this before queueing for a slot
    opens: anyio.Event | None = None  #: set when this task's answer begins (its siblings may start)
    progress: Progress | None = None  #: while it runs; written by the runner when it starts it
    cancel_note: str | None = None  #: why it was asked to cancel; written by ``TaskTable.ask_cancel``
    #: its progress's revision when a store last saved it; written by ``TaskTable.moved_progress``
    saved_revision: tuple[int, int, str | None] | None = None
