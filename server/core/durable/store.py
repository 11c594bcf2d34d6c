"""The durable store: every task's record in a SQLite file that outlives the process and that several
server processes share.

It keeps the ``TaskStore`` contract (``store.py``): every operation the table makes is a plain call on
memory. This process's own tasks live in a ``MemoryStore`` as before; what changes is written behind,
in batches, by a loop that runs every ``TICK_S`` in a worker thread (the file is never touched on the
event loop). The loop also

* saves the partial output of running tasks whose progress moved (so a crash loses at most a tick of
  it), and this process's heartbeat;
* takes the cancel requests other processes left for this one's tasks, and carries them out;
* watches the other processes' unfinished tasks that this one holds (a waiter waits on them), and
  raises their ends on the chain of ends as if they had ended here;
* ends ``interrupted`` the unfinished tasks of processes that are gone, and deletes what is past
  retention.

Records of other processes' tasks (and of this one's, once evicted from memory) are read from the file
on demand (``refresh``, ``listing``), before the registry's synchronous reads, and kept in a bounded
cache.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio

from ..models import Tokens
from ..records import GroupRecord, TaskRecord
from ..state import TaskState
from ..store import Ending, MemoryStore, Outcome, ProgressReport, StoreHooks
from .database import Batch, Database, columns, spend_json
from .schema import StoreUnavailable

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: how often the loop writes, saves partial output, takes cancel requests and watches other processes
TICK_S: Final = 0.5
_ORPHAN_TICKS: Final = 10  #: look for tasks of gone processes every 5 s
_IDLE_TICKS: Final = 10  #: an idle process writes its heartbeat every 5 s (gone after ``STALE_AFTER_S``)
_PRUNE_TICKS: Final = 120  #: delete what is past retention every minute
_CACHE: Final = 20_000  #: ended records of other processes kept in memory at most


class DurableStore:
    """A ``TaskStore`` over a SQLite file (see the module). Open it with ``open_durable_store``."""

    def __init__(self, db: Database, retention_s: float, max_finished: int) -> None:
        self._db = db
        self._retention_s, self._max_finished = retention_s, max_finished
        self._own = MemoryStore()
        self._worker = anyio.CapacityLimiter(1)  #: one call on the file at a time
        self._hooks = StoreHooks()
        # Writes not yet made: new spawns, and the records changed since the last flush (held here too,
        # so that one evicted from memory before the flush is still written, and still found).
        self._new_groups: list[GroupRecord] = []
        self._new: dict[str, TaskRecord] = {}
        self._changed: dict[str, TaskRecord] = {}
        self._spent_groups: dict[str, GroupRecord] = {}
        self._progress: dict[str, ProgressReport] = {}
        self._cancels: list[tuple[str, str]] = []
        self._syntheses: list[tuple[str, tuple[str, ...]]] = []
        self._writing = anyio.Lock()
        self._unwritten: list[Batch] = []  #: batches taken and not yet written, oldest first
        # Records read from the file: other processes' unfinished ones (watched), and ended ones (cached).
        self._watched: dict[str, TaskRecord] = {}
        self._cached: OrderedDict[str, TaskRecord] = OrderedDict()
        self._groups: OrderedDict[str, GroupRecord] = OrderedDict()

    @property
    def path(self) -> Path:
        return self._db.path

    # --- TaskStore: this process's tasks, in memory ---------------------------------------------------

    @property
    def ending(self) -> Ending:
        return self._own.ending

    def attach(self, hooks: StoreHooks) -> None:
        self._hooks = hooks

    def put(self, group: GroupRecord, tasks: Sequence[TaskRecord]) -> None:
        self._own.put(group, tasks)
        self._new_groups.append(group)
        for record in tasks:
            self._new[record.id] = record

    def task(self, task_id: str) -> TaskRecord | None:
        found = self._own.task(task_id) or self._new.get(task_id) or self._changed.get(task_id)
        return found or self._watched.get(task_id) or self._cached.get(task_id)

    def group(self, group_id: str) -> GroupRecord | None:
        return self._own.group(group_id) or self._groups.get(group_id)

    def move(self, task_id: str, target: TaskState, at: float, outcome: Outcome | None = None) -> None:
        self._own.move(task_id, target, at, outcome)
        self._changed[task_id] = self._own.task(task_id) or self._changed[task_id]
        if outcome is not None:
            self._progress.pop(task_id, None)

    def record_usage(self, task_id: str, tokens: Tokens, cost_usd: float | None) -> None:
        self._own.record_usage(task_id, tokens, cost_usd)
        record = self._own.task(task_id)
        assert record is not None  # usage comes from a running task
        self._changed[task_id] = record
        group = self._own.group(record.group_id)
        assert group is not None
        self._spent_groups[group.id] = group

    def tally(self, group_id: str | None = None, owner: str | None = None) -> Mapping[TaskState, int]:
        return self._own.tally(group_id, owner)

    def newest(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> list[TaskRecord]:
        return self._own.newest(group_id, state, limit, owner)

    def finished(self) -> int:
        return self._own.finished()

    def evict(self, ended_before: float, keep: int) -> None:
        self._own.evict(ended_before, keep)  # from memory: the file keeps them (``prune`` deletes)

    def request_cancel(self, task_id: str, reason: str) -> None:
        self._cancels.append((task_id, reason))

    def cancel_asked(self, task_id: str) -> bool:
        return False  # the process that runs it knows; the file does not say (yet)

    def elsewhere(self) -> tuple[int, int]:
        return 0, 0  # what this process spawned runs in it

    def remember_synthesis(self, key: str, task_ids: tuple[str, ...]) -> None:
        self._syntheses.append((key, task_ids))

    async def recall_synthesis(self, key: str) -> tuple[str, ...] | None:
        await self.flush()
        return await self._call(self._db.synthesis, key)

    # --- reading the file -----------------------------------------------------------------------------

    async def refresh(self, task_ids: Sequence[str]) -> None:
        """Make the records of ``task_ids`` current: read those this process does not run from the file
        (new ones, and other processes' unfinished ones, which may have moved), with their groups."""
        wanted = [i for i in task_ids if self._own.task(i) is None and i not in self._new]
        wanted = [i for i in wanted if i not in self._changed]
        wanted = [i for i in wanted if i in self._watched or i not in self._cached]
        if not wanted:
            return
        records = await self._call(self._db.tasks, wanted)
        self._take(records)
        missing = {r.group_id for r in records if self.group(r.group_id) is None}
        for group_id in missing:
            await self.refresh_group(group_id)

    async def refresh_group(self, group_id: str) -> None:
        """Read a group this process did not spawn from the file (its totals may have moved)."""
        if self._own.group(group_id) is not None:
            return
        group = await self._call(self._db.group, group_id)
        if group is None:
            self._groups.pop(group_id, None)
            return
        self._groups[group_id] = group
        self._groups.move_to_end(group_id)
        while len(self._groups) > _CACHE:
            self._groups.popitem(last=False)

    async def listing(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> tuple[Mapping[TaskState, int], list[TaskRecord]]:
        """Tasks of every process kept in the file, per state, and the newest ``limit`` of them (of a
        group, in a state, of an owner), this process's writes included."""
        await self.flush()
        tally = await self._call(self._db.tally, group_id, owner)
        shown = await self._call(self._db.newest, group_id, state, limit, owner) if limit else []
        self._take([r for r in shown if self._own.task(r.id) is None])
        return tally, [self.task(r.id) or r for r in shown]

    def _take(self, records: Sequence[TaskRecord]) -> None:
        """Records read from the file into the cache: an unfinished one is watched; one already held is
        updated in place (the runner and waiters hold it); one seen to end raises its end."""
        for fresh in records:
            held = self._watched.get(fresh.id) or self._cached.get(fresh.id)
            record = fresh if held is None else _update(held, fresh)
            if not record.state.terminal:
                self._watched[record.id] = record
                continue
            self._cached[record.id] = record
            self._cached.move_to_end(record.id)
            if self._watched.pop(record.id, None) is not None:
                self._own.announce(record.id)
        while len(self._cached) > _CACHE:
            self._cached.popitem(last=False)

    # --- writing the file -----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every change made so far, with the progress of running tasks, in one transaction; then
        carry out the cancel requests other processes left.

        A write that fails (the disk is full, another program holds the file) is logged and kept, and
        made again, in order, by the next flush: the server goes on, and nothing it kept is dropped.
        """
        async with self._writing:  # batches are written in the order they were taken
            for report in self._hooks.progress():
                self._progress[report.task_id] = report
                record = self._own.task(report.task_id)
                if record is not None:
                    self._changed[report.task_id] = record
            self._unwritten.append(self._batch())
            requests: list[tuple[str, str]] = []
            try:
                while self._unwritten:
                    requests += await self._call(self._db.write, self._unwritten[0])
                    self._unwritten.pop(0)
            except StoreUnavailable as exc:
                logger.warning("%s; writing again in %g s", exc, TICK_S)
        if requests:
            self._hooks.cancel(requests)

    def _batch(self) -> Batch:
        batch = Batch(new_groups=self._new_groups, cancel_requests=self._cancels, syntheses=self._syntheses)
        batch.group_spends = [(spend_json(g.spend), g.id) for g in self._spent_groups.values()]
        for task_id, record in self._new.items():
            batch.new_tasks.append((record, self._columns(record)))
            self._changed.pop(task_id, None)
        for record in self._changed.values():
            batch.changed.append((self._columns(record), record if record.state.terminal else None))
        self._new_groups, self._cancels, self._syntheses = [], [], []
        self._new, self._changed, self._spent_groups = {}, {}, {}
        return batch

    def _columns(self, record: TaskRecord) -> tuple[Any, ...]:
        report = self._progress.get(record.id)
        if record.state.terminal or report is None:
            return columns(record, None, record.note, record.attempts)
        return columns(record, report.text, report.note, report.attempts)

    async def start(self) -> None:
        """Say this process is here; end what gone processes left unfinished; delete what is past
        retention."""
        await self._call(self._db.register)
        await self.interrupt_orphans()
        await self.prune()

    async def close(self) -> None:
        """Write what is left and say this process is gone (its tasks have all ended by now)."""
        try:
            await self.flush()
            await self._call(self._db.unregister)
        finally:
            await self._call(self._db.close)

    async def keep_in_step(self) -> None:
        """The loop (see the module): runs until cancelled."""
        tick = 0
        while True:
            await anyio.sleep(TICK_S)
            tick += 1
            if self._idle() and tick % _IDLE_TICKS:
                continue  # nothing to write, watch or cancel: a heartbeat now and then is enough
            await self.flush()  # logs its own failures, and keeps what it could not write
            try:
                await self._watch()
                if tick % _ORPHAN_TICKS == 0:
                    await self.interrupt_orphans()
                if tick % _PRUNE_TICKS == 0:
                    await self.prune()
            except StoreUnavailable as exc:  # a read that failed is made again at a later tick
                logger.warning("%s", exc)

    def _idle(self) -> bool:
        """Nothing to write, no task here unfinished (none another process could ask to cancel), and
        none of another process's watched."""
        tally = self._own.tally()
        busy = tally[TaskState.QUEUED] or tally[TaskState.RUNNING] or self._watched or self._unwritten
        pending = self._new or self._changed or self._new_groups or self._cancels or self._syntheses
        return not (busy or pending)

    async def _watch(self) -> None:
        if self._watched:
            self._take(await self._call(partial(self._db.tasks, ended_only=True), list(self._watched)))

    async def interrupt_orphans(self) -> None:
        ended = await self._call(self._db.interrupt_orphans)
        if ended:
            logger.warning("%d unfinished tasks of server processes that are gone ended interrupted", ended)

    async def prune(self) -> None:
        await self._call(self._db.prune, time.time() - self._retention_s, self._max_finished)

    async def facts(self) -> dict[str, Any]:
        return await self._call(self._db.facts)

    async def _call(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call`` on the file, in the worker thread.

        Raises:
            StoreUnavailable: the file failed it (SQLite's error, with the file named and what to do).
        """
        try:
            return await anyio.to_thread.run_sync(call, *args, limiter=self._worker)
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"the task store {self._db.path} failed a {'write' if call == self._db.write else 'read'} "
                f"({exc}); if it goes on, check the disk and that no other program holds the file"
            ) from None


def _update(held: TaskRecord, fresh: TaskRecord) -> TaskRecord:
    for spec in fields(TaskRecord):
        setattr(held, spec.name, getattr(fresh, spec.name))
    return held


@asynccontextmanager
async def open_durable_store(
    path: Path, *, retention_s: float, max_finished: int
) -> AsyncGenerator[DurableStore, None]:
    """Open the store at ``path`` for this process, run its loop, and on exit write what is left.

    Raises:
        StoreUnavailable: the file cannot be used (the message says why and what to do).
    """
    process_id = f"p-{secrets.token_urlsafe(9)}"
    db = await anyio.to_thread.run_sync(Database, path, process_id)
    store = DurableStore(db, retention_s, max_finished)
    error: Exception | None = None
    try:
        await store.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.keep_in_step)
            try:
                yield store
            except Exception as exc:  # re-raised as itself below, not in an exception group
                error = exc
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
    if error is not None:
        raise error
