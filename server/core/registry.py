"""The task registry: the engine's one API for tasks, over the task table and the runner.

``open_registry`` opens one anyio task group for the server's lifetime; every task runs in it (see
``runner.py``), bounded by a ``CapacityLimiter`` (and by its spawn's own limiter when it asked for
less). Each task gets its own cancel scope when it is spawned, before its runner starts, so cancelling a
queued task works. A task's failure is recorded on the task and never reaches the task group: its
siblings and the server go on. On exit every unfinished task ends ``interrupted`` and nothing is left
running. The records are in the table's store (``table.py``, ``store.py``).

Every call that names tasks, or lists or spawns them, takes the ``Caller`` (``callers.py``): a task or
group belongs to the principal that spawned it, and another principal's id answers exactly as an id
that never existed (the same exception and message, hints included). An operator sees everything.
What ``select`` returns has been checked, so the calls that take its ids (``snapshots``, ``counts``,
``usage``, ``wait``...) take no caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc

from ..backends import Backend
from ..backends.roster import Roster
from ..config.pricing import PriceTable
from ..config.settings import Settings
from ..intake.files import FileReader
from ..intake.prepare import PlannedTask
from ..intake.requests import SpawnRequest
from .callers import Caller
from .errors import UnknownTask
from .executor import ExecutorFactory
from .lookup import MAX_IDS_PER_CALL, Lookup
from .models import (
    CancelOutcome,
    Counts,
    GroupSummary,
    Listing,
    RetryNotice,
    RetryReceipt,
    SpawnedTask,
    SpawnReceipt,
    Statistics,
    TaskSnapshot,
    Usage,
)
from .quotas import Quotas
from .records import Spend, TaskRecord
from .retries import plan_retry
from .retry_notices import RetryNotices
from .runner import SHUTDOWN_NOTE, Runner
from .spawning import Spawner
from .state import TaskState
from .store import MemoryStore, StoreHooks, TaskStore
from .table import TaskTable

logger = logging.getLogger(__name__)

#: who a cancel another process asked for (through the store) is carried out as
_ANOTHER_PROCESS = Caller("another server process on the store", operator=True)


class TaskRegistry:
    """Spawns, tracks, cancels and evicts tasks. Create it with ``open_registry``."""

    def __init__(
        self,
        task_group: anyio.abc.TaskGroup,
        settings: Settings,
        backends: Roster,
        prices: PriceTable,
        files: FileReader,
        store: TaskStore,
        executor: ExecutorFactory = Runner,
    ) -> None:
        self._tg = task_group
        self._settings = settings
        self._store = store
        self._table = TaskTable(store, retention_s=settings.retention_s, max_finished=settings.max_finished)
        self._lookup = Lookup(self._table, settings.retention_s)
        self._notices = RetryNotices(logger)
        self._runner = executor(task_group, self._table, settings, prices, self._notices.tell)
        quotas = Quotas(
            settings.max_unfinished_per_principal or settings.max_unfinished,
            settings.max_spawns_per_minute,
            lambda owner: self._table.tally(owner=owner),
        )
        self._spawner = Spawner(settings, backends, prices, files, self._table, self._runner, quotas)
        self._table.on_end(*self._runner.end_hooks())
        store.attach(StoreHooks(progress=self._table.moved_progress, cancel=self._cancel_asked))

    def on_retry(self, listener: Callable[[RetryNotice], None]) -> None:
        """Tell ``listener`` of every retry of every task, as it happens (before the wait).

        It is called synchronously from the retrying task, so it must be quick and must not block; what
        it raises is logged and ignored. Every retry is also logged on this module's logger: at WARNING,
        or at INFO when the provider only asked for less load (429/529, which a big fan-out meets as a
        matter of course and the throttle answers).
        """
        self._notices.listen(listener)

    # --- spawning ----------------------------------------------------------------------------------

    async def spawn(
        self, request: SpawnRequest, extra_backends: Mapping[str, Backend] | None = None, *, caller: Caller
    ) -> SpawnReceipt:
        """Start every task of ``request`` in the background and return their ids at once.

        ``extra_backends`` are backends only this spawn's tasks may use (the MCP layer's sampling
        backend, bound to the session that asked). The tasks and their group belong to ``caller``.

        Raises:
            InvalidInput: the request cannot run as given (the message says why and what to do).
            LimitReached: the spawn would pass one of ``caller``'s limits.
            BackendUnavailable: a task's backend cannot run here.
            RegistryClosed: the server is shutting down.
        """
        group, records, warnings = await self._spawner.spawn(request, extra_backends, caller)
        await self._save(group.id)  # the ids are returned once they outlive a crash
        tasks = [SpawnedTask(task_id=r.id, label=r.spec.label, state=r.state) for r in records]
        return SpawnReceipt(group_id=group.id, tasks=tasks, warnings=warnings)

    async def retry(
        self, task_ids: Sequence[str], extra_backends: Mapping[str, Backend] | None = None, *, caller: Caller
    ) -> RetryReceipt:
        """Run again, as one new spawn, those of ``task_ids`` (ids ``select`` returned) that ended
        failed, cancelled or interrupted; the completed and unfinished ones are left as they are
        (``skipped``).

        Each runs again as its spawn asked for it (its files read again) with its spawn's settings, a
        fresh budget equal to its spawn's, and ``retry_of`` its old id. A re-run that depended on another
        re-run waits for the new copy; one that depended on a task not run again waits for that task's
        answer (a completed one's joins its prompt at once). ``extra_backends``: as for ``spawn``. The new
        spawn belongs to ``caller``.

        Raises:
            InvalidInput: nothing to run again; tasks of several spawns or of a synthesis; a dependency
                that ended without an answer and is not run again, or is no longer kept.
            BackendUnavailable: a task's backend cannot run here.
            RegistryClosed: the server is shutting down.
        """
        records = self._lookup.known(task_ids, caller)
        await self._store.refresh([dep for record in records for dep in record.depends_on])
        plan = plan_retry(records, self._table.task, self._table.group)
        group, records, warnings = await self._spawner.spawn(plan.request, extra_backends, caller, plan)
        await self._save(group.id)
        tasks = [
            SpawnedTask(task_id=r.id, label=r.spec.label, state=r.state, retry_of=r.retry_of) for r in records
        ]
        return RetryReceipt(group_id=group.id, tasks=tasks, warnings=warnings, skipped=plan.skipped)

    async def spawn_planned(
        self, planned: Sequence[PlannedTask], synthesis_key: str | None, *, caller: Caller
    ) -> list[str]:
        """Start the tasks of a model synthesis (or a conflict resolution), planned by the engine for
        ``caller``, as a group of their own, owned by ``caller``; their ids. A synthesis's are kept under
        ``synthesis_key`` (``recall_synthesis`` finds them, in any process). Only the server's limits
        apply: the caller asked for it by name."""
        group = self._spawner.spawn_planned(planned, caller)
        if synthesis_key is not None:
            self._store.remember_synthesis(synthesis_key, tuple(group.task_ids))
        await self._save(group.id)
        return list(group.task_ids)

    async def _save(self, group_id: str) -> None:  # then its runners may go (``Runner.start``)
        try:
            await self._store.flush()
        finally:
            self._runner.saved(group_id)

    async def recall_synthesis(self, synthesis_key: str) -> tuple[str, ...] | None:
        """The tasks of the model synthesis kept under ``synthesis_key`` (by this process or another, this
        one's earlier life included), their records current; None if none is kept."""
        ids = await self._store.recall_synthesis(synthesis_key)
        if ids is not None:
            await self._store.refresh(ids)
        return ids

    # --- reading -----------------------------------------------------------------------------------

    async def select(
        self, task_ids: Sequence[str] | None, group_id: str | None, *, caller: Caller
    ) -> list[str]:
        """Resolve ``task_ids`` xor ``group_id`` into known task ids that ``caller`` may see, their records
        current (read from the store, for tasks other processes run or ran).

        Raises:
            InvalidInput: both or neither given, or an empty or oversized list.
            UnknownTask: an id the registry does not know, or one that ``caller`` may not see.
        """
        self._table.evict()
        await self._load(task_ids, group_id)
        return self._lookup.select(task_ids, group_id, caller)

    async def _load(self, task_ids: Sequence[str] | None, group_id: str | None) -> None:
        """Read from the store what this process does not run among the tasks named (see ``refresh``)."""
        if group_id is not None and task_ids is None:
            await self._store.refresh_group(group_id)
            if (group := self._table.group(group_id)) is not None:
                await self._store.refresh(group.task_ids)
        elif task_ids is not None and group_id is None and len(task_ids) <= MAX_IDS_PER_CALL:
            await self._store.refresh(list(dict.fromkeys(task_ids)))

    def _records(self, task_ids: Sequence[str]) -> list[TaskRecord]:  # the known ones, in their order
        return [record for task_id in task_ids if (record := self._table.task(task_id)) is not None]

    def snapshot(self, task_id: str, *, caller: Caller) -> TaskSnapshot:
        """One task as it is now.

        Raises:
            UnknownTask: no such task, or another principal's.
        """
        record = self._lookup.task(task_id, caller)
        if record is None:
            raise UnknownTask(self._lookup.unknown_message([task_id], caller))
        return self._table.snapshot(record)

    def snapshots(self, task_ids: Sequence[str]) -> list[TaskSnapshot]:
        return [self._table.snapshot(record) for record in self._records(task_ids)]

    async def list(
        self,
        group_id: str | None = None,
        state: TaskState | None = None,
        limit: int | None = None,
        *,
        caller: Caller,
    ) -> Listing:
        """``caller``'s tasks (an operator's: everyone's) in spawn order, optionally of one group and/or
        in one state; the newest ``limit``.

        The counts are kept as tasks move, and the tasks are read newest first until ``limit`` are found,
        so a listing costs what it returns, not what the registry holds (with a ``state``, what it skips
        to find them too).
        """
        self._table.evict()
        if group_id is not None:
            await self._store.refresh_group(group_id)
            self._lookup.group(group_id, caller)
        owner = caller.owner_filter
        wanted = 10_000_000 if limit is None else limit
        tally, shown = await self._store.listing(group_id, state, wanted, owner)
        counts = Counts.of_tally(tally if state is None else {state: tally[state]})
        total = sum(tally.values()) if state is None else tally[state]
        return Listing([self._table.snapshot(record) for record in shown], total, counts)

    def running_here(self) -> list[TaskSnapshot]:
        """The tasks this process runs now, oldest first (from memory, without reading the store)."""
        running = self._table.tally()[TaskState.RUNNING]
        return [self._table.snapshot(r) for r in self._table.newest(None, TaskState.RUNNING, running)]

    async def refresh(self, task_ids: Sequence[str]) -> None:
        """Bring the records of tasks other processes run up to date (their partial output, their state),
        before reading them again after a wait."""
        await self._store.refresh(task_ids)

    def counts(self, task_ids: Sequence[str]) -> Counts:
        return Counts.of([record.state for record in self._records(task_ids)])

    def ids_by_state(self, task_ids: Sequence[str]) -> dict[TaskState, list[str]]:
        """The known ids of ``task_ids`` per state (every state, in their order), without a snapshot."""
        by_state: dict[TaskState, list[str]] = {state: [] for state in TaskState}
        for record in self._records(task_ids):
            by_state[record.state].append(record.id)
        return by_state

    def group_summary(self, group_id: str) -> GroupSummary:
        """A spawn's size, the usage of every call of its tasks (evicted ones too) and its budget.

        Kept as tasks report usage, so it costs the same for a group of one or of thousands.
        """
        group = self._table.group(group_id)
        if group is None:
            raise UnknownTask(f"no group with id {group_id!r}")
        return GroupSummary(
            group_id, len(group.task_ids), group.spend.usage(), group.budget_usd, round(group.spent_usd, 6)
        )

    def groups_of(self, task_ids: Sequence[str]) -> list[str]:
        """The groups these tasks belong to, in order of first appearance."""
        return list(dict.fromkeys(record.group_id for record in self._records(task_ids)))

    def usage(self, task_ids: Sequence[str]) -> Usage:
        total = Spend()
        for record in self._records(task_ids):
            total.add(record.spend, record.spend.cost_usd)
        return total.usage()

    def statistics(self) -> Statistics:
        table = self._table
        return Statistics(
            queued=table.unfinished - table.running,
            running=table.running,
            finished=table.finished,
            capacity=self._runner.capacity,
            held_bytes=table.held_bytes,
        )

    # --- waiting and cancelling ----------------------------------------------------------------------

    async def wait(
        self, task_ids: Sequence[str], on_change: Callable[[list[str]], Awaitable[None]] | None = None
    ) -> None:
        """Return once every task in ``task_ids`` has ended. Bound it with ``move_on_after``.

        ``on_change`` is awaited each time some of them end, with the ids of those.
        """
        await self._table.wait(task_ids, on_change)

    def cancel(
        self, task_ids: Sequence[str], reason: str = "cancelled by cancel_tasks", *, caller: Caller
    ) -> CancelOutcome:
        """Cancel every unfinished task of ``task_ids``; a queued one ends at once, a running one soon.

        Raises:
            UnknownTask: one of them is not known to ``caller`` (then none is cancelled).
        """
        cancelled: list[str] = []
        finished: list[TaskSnapshot] = []
        # Look every record up first: ending a queued task can evict an old finished one further down.
        for record in self._lookup.known(task_ids, caller):
            live = self._table.ask_cancel(record.id, reason)
            if live is None and not record.state.terminal:  # another process runs it, and was asked
                cancelled.append(record.id)
                continue
            if live is None:
                finished.append(self._table.snapshot(record))
                continue
            if record.state is TaskState.QUEUED:
                self._table.move(record.id, TaskState.CANCELLED, note=reason)
            live.scope.cancel()
            cancelled.append(record.id)
        return CancelOutcome(cancelled, finished)

    def _cancel_asked(self, requests: list[tuple[str, str]]) -> None:
        """Other processes asked to cancel these tasks of this one (through the store): the one that asked
        checked that its caller may."""
        for task_id, reason in requests:
            if self._table.live(task_id) is not None:
                self.cancel([task_id], reason, caller=_ANOTHER_PROCESS)

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse new spawns and interrupt everything unfinished (it ends ``interrupted``)."""
        self._spawner.closed = True
        self._runner.shutting_down = True
        self._tg.cancel_scope.cancel()

    def sweep(self) -> None:
        """After the task group has ended: tasks whose runner never started end ``interrupted`` too."""
        for task_id in self._table.unfinished_ids():
            self._table.move(task_id, TaskState.INTERRUPTED, note=SHUTDOWN_NOTE)


@asynccontextmanager
async def open_registry(
    settings: Settings,
    backends: Roster | Backend,
    prices: PriceTable | None = None,
    files: FileReader | None = None,
    store: TaskStore | None = None,
    executor: ExecutorFactory = Runner,
) -> AsyncGenerator[TaskRegistry, None]:
    """Open the registry and its task group; on exit cancel every unfinished task and wait for them.

    ``backends`` may be a single backend, which is then the only one and the default. Without
    ``prices``, ``files`` or ``store``: the built-in prices, a reader of the settings' roots and a
    store in memory. ``executor``: where tasks run (``executor.py``); by default here, by the runner.

    An exception from the body is re-raised as itself once the task group has closed, not wrapped in
    an exception group (runners never raise anything but cancellation).
    """
    registry: TaskRegistry | None = None
    error: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            roster = backends if isinstance(backends, Roster) else Roster.single(backends)
            reader = files or FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
            prices = prices or PriceTable.load(None)
            registry = TaskRegistry(tg, settings, roster, prices, reader, store or MemoryStore(), executor)
            try:
                yield registry
            except Exception as exc:
                error = exc
            finally:
                registry.close()
    finally:
        if registry is not None:
            registry.sweep()
    if error is not None:
        raise error


__all__ = ["CancelOutcome", "GroupSummary", "Listing", "Statistics", "TaskRegistry", "open_registry"]
