"""The task table: every task's record (in a store), its live part while unfinished, and ``move``.

``move`` is the one place a task's state changes. In order: it checks the transition against the table
(``state.py``); stamps the time; on an end, folds the task's progress into its record, closes the
progress, drops the live part, raises the end (through the store) and updates the counters; then it
calls the end hooks, in the order the registry gave them; last, it evicts what is past retention. The
table starts nothing and cancels nothing itself: what an end means for other tasks (a warm-up gate to
open, a budget stop) is the runner's, told through the hooks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from .live import Live
from .models import TaskError, TaskSnapshot, Tokens
from .progress import Progress
from .records import GroupRecord, TaskRecord
from .state import TaskState, can_move
from .store import Ending, Outcome, ProgressReport, TaskStore

#: Told of every end, after the table's bookkeeping: the ended task's record, its group, its live part.
EndHook = Callable[[TaskRecord, GroupRecord, Live], None]


class TaskTable:
    """Every task kept, and the one ``move``. Its counters cost nothing to read however many it keeps."""

    def __init__(self, store: TaskStore, *, retention_s: float, max_finished: int) -> None:
        self._store = store
        # Reads of one record go straight to the store: the registry makes one per id it is given.
        self.task: Callable[[str], TaskRecord | None] = store.task
        self.group: Callable[[str], GroupRecord | None] = store.group
        self._retention_s = retention_s
        self._max_finished = max_finished
        self._live: dict[str, Live] = {}  #: every unfinished task's live part, and only theirs
        self._running = 0
        self._held_bytes = 0  #: what unfinished tasks hold: their own text, their spawns' shared part
        self._end_hooks: tuple[EndHook, ...] = ()

    def on_end(self, *hooks: EndHook) -> None:
        """The hooks every end calls, in this order (set once, by the registry)."""
        self._end_hooks = hooks

    # --- counters -------------------------------------------------------------------------------------

    @property
    def running(self) -> int:
        return self._running + self._store.elsewhere()[1]

    @property
    def unfinished(self) -> int:
        return len(self._live) + sum(self._store.elsewhere())

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    @property
    def finished(self) -> int:
        return self._store.finished()

    @property
    def ending(self) -> Ending:
        """The open end of the chain of ends (see ``store.Ending``)."""
        return self._store.ending

    # --- adding and reading -----------------------------------------------------------------------------

    def add(self, group: GroupRecord, records: Sequence[TaskRecord], lives: Iterable[Live]) -> None:
        """A new spawn: its records, all queued, and their live parts."""
        self._store.put(group, records)
        self._held_bytes += group.shared_bytes
        for live in lives:
            self._live[live.task_id] = live
            self._held_bytes += live.held_bytes

    def live(self, task_id: str) -> Live | None:
        """The live part of an unfinished task; None once it ended."""
        return self._live.get(task_id)

    def ended(self, task_id: str) -> bool:
        return task_id not in self._live

    def unfinished_ids(self) -> list[str]:
        return list(self._live)

    def snapshot(self, record: TaskRecord) -> TaskSnapshot:
        live = self._live.get(record.id)
        if live is not None or record.state.terminal:
            return record.snapshot(live)
        return record.snapshot(None, self._store.cancel_asked(record.id))

    def newest(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> list[TaskRecord]:
        return self._store.newest(group_id, state, limit, owner)

    def tally(self, group_id: str | None = None, owner: str | None = None) -> Mapping[TaskState, int]:
        """Tasks kept per state (of one group, else of one owner, else of all), kept as tasks move."""
        return self._store.tally(group_id, owner)

    # --- writing ----------------------------------------------------------------------------------------

    def ask_cancel(self, task_id: str, reason: str) -> Live | None:
        """Note that an unfinished task is to be cancelled, and why; its live part (None: it ended, or it
        runs in another process: then that process is asked, through the store)."""
        live = self._live.get(task_id)
        if live is not None:
            live.cancel_note = reason
            return live
        record = self._store.task(task_id)
        if record is not None and not record.state.terminal:
            self._store.request_cancel(task_id, reason)
        return None

    def moved_progress(self) -> list[ProgressReport]:
        """The running tasks whose progress moved since the last call (a store saves them)."""
        moved: list[ProgressReport] = []
        for task_id, live in self._live.items():
            progress = live.progress
            if progress is None or live.saved_revision == (revision := progress.revision):
                continue
            live.saved_revision = revision
            moved.append(ProgressReport(task_id, progress.text, progress.note, progress.attempts))
        return moved

    def record_usage(self, task_id: str, tokens: Tokens, cost_usd: float | None) -> None:
        """One provider call of a running task (its progress tells)."""
        self._store.record_usage(task_id, tokens, cost_usd)

    def move(
        self,
        task_id: str,
        target: TaskState,
        *,
        output: str | None = None,
        structured: Any = None,
        stop_reason: str | None = None,
        model: str | None = None,
        error: TaskError | None = None,
        note: str | None = None,
    ) -> None:
        """The one place a task's state changes. An end's fields not given come from its progress."""
        record = self._store.task(task_id)
        if record is None or not can_move(record.state, target):
            state = record.state if record is not None else "evicted"
            raise RuntimeError(f"task {task_id}: illegal transition {state} -> {target}")
        if target is TaskState.RUNNING:
            self._running += 1
            self._store.move(task_id, target, time.monotonic())
            return
        live = self._live.pop(task_id)
        self._running -= record.state is TaskState.RUNNING
        progress = live.progress
        outcome = _fold(target, progress, output, structured, stop_reason, model, error, note)
        if progress is not None:
            progress.close()
        self._store.move(task_id, target, time.monotonic(), outcome)
        group = self._store.group(record.group_id)
        assert group is not None  # a group outlives its unfinished tasks
        self._release(live, group)
        for hook in self._end_hooks:
            hook(record, group, live)
        self.evict()

    def _release(self, live: Live, group: GroupRecord) -> None:
        """An ended task's bytes, and its spawn's shared ones once the spawn's last task has ended."""
        tally = self._store.tally(group.id)
        last = tally[TaskState.QUEUED] + tally[TaskState.RUNNING] == 0
        self._held_bytes -= live.held_bytes + (group.shared_bytes if last else 0)

    def evict(self) -> None:
        """Forget ended tasks past the retention time or beyond the number kept."""
        self._store.evict(time.time() - self._retention_s, self._max_finished)

    def _ended_anywhere(self, task_id: str) -> bool:
        """Ended, here or in the process that runs it (whose end the store raises here too)."""
        if task_id in self._live:
            return False
        record = self._store.task(task_id)
        return record is None or record.state.terminal

    # --- waiting ----------------------------------------------------------------------------------------

    async def wait(
        self, task_ids: Sequence[str], on_change: Callable[[list[str]], Awaitable[None]] | None = None
    ) -> None:
        """Return once every task in ``task_ids`` has ended; ``on_change`` is awaited each time some end,
        with those (in the order they ended; the ones that had ended before the wait are not among them)."""
        # Take the chain's open end before looking at any state: every task that ends after this line
        # is on the chain from here, even if it ends while on_change is awaiting.
        node = self._store.ending
        pending = {task_id for task_id in task_ids if not self._ended_anywhere(task_id)}
        while pending:
            await node.event.wait()
            ended: list[str] = []
            while node.next is not None:  # every end since the last look, each seen once
                if node.task_id in pending:
                    pending.discard(node.task_id)
                    ended.append(node.task_id)
                node = node.next
            if ended and on_change is not None:
                await on_change(ended)


def _fold(
    target: TaskState,
    progress: Progress | None,
    output: str | None,
    structured: Any,
    stop_reason: str | None,
    model: str | None,
    error: TaskError | None,
    note: str | None,
) -> Outcome:
    """An ended task's outcome: what its end says, and for the rest what its progress last said (a
    completed task's status note is over; a failed one's may say why)."""
    if progress is None:  # it never started
        return Outcome(output, structured, stop_reason, model, error, note, 0, time.time())
    if note is None and target is not TaskState.COMPLETED:
        note = progress.note
    return Outcome(
        output=output if output is not None else progress.text,
        structured=structured,
        stop_reason=stop_reason,
        model=model if model is not None else progress.model,
        error=error,
        note=note,
        attempts=progress.attempts,
        finished_at=time.time(),
    )
