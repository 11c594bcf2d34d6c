"""The task registry: the engine's one API for tasks, over the task table and the runner.

``open_registry`` opens one anyio task group for the server's lifetime; every task runs in it (see
``runner.py``), bounded by a ``CapacityLimiter`` (and by its spawn's own limiter when it asked for
less). Each task gets its own cancel scope when it is spawned, before its runner starts, so cancelling a
queued task works. A task's failure is recorded on the task and never reaches the task group: its
siblings and the server go on. On exit every unfinished task ends ``cancelled`` and nothing is left
running. The records are in the table's store (``table.py``, ``store.py``).
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
from .errors import InvalidInput, UnknownTask
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
from .records import GroupRecord, Spend, TaskRecord
from .retries import plan_retry
from .runner import Runner
from .spawning import Spawner
from .state import ErrorKind, TaskState
from .store import MemoryStore, TaskStore
from .table import TaskTable

logger = logging.getLogger(__name__)

_MAX_IDS_PER_CALL = 10_000


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
    ) -> None:
        self._tg = task_group
        self._settings = settings
        self._table = TaskTable(store, retention_s=settings.retention_s, max_finished=settings.max_finished)
        self._runner = Runner(task_group, self._table, settings, prices, self._retrying)
        self._spawner = Spawner(settings, backends, prices, files, self._table, self._runner)
        runner = self._runner
        # What an end means beyond the table, in this order: the lead's gate opens before the budget stop
        # ends queued siblings, and a spawn is forgotten only after that.
        self._table.on_end(runner.let_siblings_go, runner.stop_spent_spawn, runner.forget_ended_spawn)
        self._retry_listeners: list[Callable[[RetryNotice], None]] = []

    def on_retry(self, listener: Callable[[RetryNotice], None]) -> None:
        """Tell ``listener`` of every retry of every task, as it happens (before the wait).

        It is called synchronously from the retrying task, so it must be quick and must not block; what
        it raises is logged and ignored. Every retry is also logged on this module's logger: at WARNING,
        or at INFO when the provider only asked for less load (429/529, which a big fan-out meets as a
        matter of course and the throttle answers).
        """
        self._retry_listeners.append(listener)

    def _retrying(self, notice: RetryNotice) -> None:
        level = logging.INFO if notice.cause is ErrorKind.RATE_LIMITED else logging.WARNING
        cause = notice.cause.value
        logger.log(level, "task %s (%s) retrying [%s]: %s", notice.task_id, notice.label, cause, notice.note)
        for listener in self._retry_listeners:
            try:
                listener(notice)
            except Exception:  # a listener's bug must not fail the task that is retrying
                logger.exception("a retry listener failed")

    # --- spawning ----------------------------------------------------------------------------------

    async def spawn(
        self, request: SpawnRequest, extra_backends: Mapping[str, Backend] | None = None
    ) -> SpawnReceipt:
        """Start every task of ``request`` in the background and return their ids at once.

        ``extra_backends`` are backends only this spawn's tasks may use (the MCP layer's sampling
        backend, bound to the session that asked).

        Raises:
            InvalidInput: the request cannot run as given (the message says why and what to do).
            BackendUnavailable: a task's backend cannot run here.
            RegistryClosed: the server is shutting down.
        """
        group, records, warnings = await self._spawner.spawn(request, extra_backends)
        tasks = [SpawnedTask(task_id=r.id, label=r.spec.label, state=r.state) for r in records]
        return SpawnReceipt(group_id=group.id, tasks=tasks, warnings=warnings)

    async def retry(
        self, task_ids: Sequence[str], extra_backends: Mapping[str, Backend] | None = None
    ) -> RetryReceipt:
        """Run again, as one new spawn, those of ``task_ids`` (ids ``select`` returned) that ended
        failed, cancelled or interrupted; the completed and unfinished ones are left as they are
        (``skipped``).

        Each runs again as its spawn asked for it (its files read again) with its spawn's settings, a
        fresh budget equal to its spawn's, and ``retry_of`` its old id. A re-run that depended on another
        re-run waits for the new copy; one that depended on a task not run again waits for that task's
        answer (a completed one's joins its prompt at once). ``extra_backends``: as for ``spawn``.

        Raises:
            InvalidInput: nothing to run again; tasks of several spawns or of a synthesis; a dependency
                that ended without an answer and is not run again, or is no longer kept.
            BackendUnavailable: a task's backend cannot run here.
            RegistryClosed: the server is shutting down.
        """
        plan = plan_retry(self._known(task_ids), self._table.task, self._table.group)
        group, records, warnings = await self._spawner.spawn(plan.request, extra_backends, plan)
        tasks = [
            SpawnedTask(task_id=r.id, label=r.spec.label, state=r.state, retry_of=r.retry_of) for r in records
        ]
        return RetryReceipt(group_id=group.id, tasks=tasks, warnings=warnings, skipped=plan.skipped)

    async def spawn_planned(self, planned: Sequence[PlannedTask]) -> list[str]:
        """Start tasks the engine planned itself (a synthesis) as a group of their own; their ids."""
        return self._spawner.spawn_planned(planned)

    # --- reading -----------------------------------------------------------------------------------

    def select(self, task_ids: Sequence[str] | None, group_id: str | None) -> list[str]:
        """Resolve ``task_ids`` xor ``group_id`` into known task ids.

        Raises:
            InvalidInput: both or neither given, or an empty or oversized list.
            UnknownTask: an id the registry does not know.
        """
        self._table.evict()
        if (task_ids is None) == (group_id is None):
            raise InvalidInput(
                "give exactly one of task_ids (a list of ids from spawn_parallel) or group_id (its "
                "group_id), not " + ("both" if task_ids is not None else "neither")
            )
        if group_id is not None:
            return [i for i in self._group(group_id).task_ids if self._table.task(i) is not None]
        assert task_ids is not None
        if not task_ids:
            raise InvalidInput("task_ids is empty; pass the ids spawn_parallel returned, or a group_id")
        if len(task_ids) > _MAX_IDS_PER_CALL:
            raise InvalidInput(f"task_ids has {len(task_ids)} ids; pass at most {_MAX_IDS_PER_CALL} per call")
        unique = list(dict.fromkeys(task_ids))
        unknown = [task_id for task_id in unique if self._table.task(task_id) is None]
        if unknown:
            raise UnknownTask(self._unknown_message(unknown))
        return unique

    def _group(self, group_id: str) -> GroupRecord:
        group = self._table.group(group_id)
        if group is None:
            hint = " That is a task id: pass it in task_ids." if self._table.task(group_id) else ""
            raise UnknownTask(
                f"no group with id {group_id!r}.{hint} Call list_tasks to see the current groups; finished "
                f"tasks are kept for {self._settings.retention_s:g} s."
            )
        return group

    def _unknown_message(self, unknown: list[str]) -> str:
        shown = ", ".join(repr(task_id) for task_id in unknown[:5])
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        hint = ""
        if any(self._table.group(task_id) is not None for task_id in unknown):
            hint = " One of them is a group id: pass it as group_id instead."
        return (
            f"no task with id {shown}{more}.{hint} Call list_tasks to see the current ids; finished tasks "
            f"are kept for {self._settings.retention_s:g} s."
        )

    def _records(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """The records of the known ones of ``task_ids``, in their order."""
        return [record for task_id in task_ids if (record := self._table.task(task_id)) is not None]

    def _known(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """The records of ``task_ids``, every one known (ids ``select`` returned).

        Raises:
            UnknownTask: one is not (any more).
        """
        records = self._records(task_ids)
        if len(records) != len(task_ids):
            raise UnknownTask(self._unknown_message([i for i in task_ids if self._table.task(i) is None]))
        return records

    def snapshot(self, task_id: str) -> TaskSnapshot:
        record = self._table.task(task_id)
        if record is None:
            raise UnknownTask(self._unknown_message([task_id]))
        return self._table.snapshot(record)

    def snapshots(self, task_ids: Sequence[str]) -> list[TaskSnapshot]:
        return [self._table.snapshot(record) for record in self._records(task_ids)]

    def list(
        self, group_id: str | None = None, state: TaskState | None = None, limit: int | None = None
    ) -> Listing:
        """Tasks in spawn order, optionally of one group and/or in one state; the newest ``limit``.

        The counts are kept as tasks move, and the tasks are read newest first until ``limit`` are found,
        so a listing costs what it returns, not what the registry holds (with a ``state``, what it skips
        to find them too).
        """
        self._table.evict()
        if group_id is not None:
            self._group(group_id)
        tally = self._table.tally(group_id)
        counts = Counts.of_tally(tally if state is None else {state: tally[state]})
        total = sum(tally.values()) if state is None else tally[state]
        wanted = total if limit is None else max(0, min(limit, total))
        shown = self._table.newest(group_id, state, wanted)
        return Listing([self._table.snapshot(record) for record in shown], total, counts)

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
        self, task_ids: Sequence[str], on_change: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Return once every task in ``task_ids`` has ended. Bound it with ``move_on_after``.

        ``on_change`` is awaited each time some of them end.
        """
        await self._table.wait(task_ids, on_change)

    def cancel(self, task_ids: Sequence[str], reason: str = "cancelled by cancel_tasks") -> CancelOutcome:
        """Cancel every unfinished task of ``task_ids``; a queued one ends at once, a running one soon."""
        cancelled: list[str] = []
        finished: list[TaskSnapshot] = []
        # Look every record up first: ending a queued task can evict an old finished one further down.
        for record in self._known(task_ids):
            live = self._table.ask_cancel(record.id, reason)
            if live is None:
                finished.append(self._table.snapshot(record))
                continue
            if record.state is TaskState.QUEUED:
                self._table.move(record.id, TaskState.CANCELLED, note=reason)
            live.scope.cancel()
            cancelled.append(record.id)
        return CancelOutcome(cancelled, finished)

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse new spawns and cancel everything that runs."""
        self._spawner.closed = True
        self._tg.cancel_scope.cancel()

    def sweep(self) -> None:
        """After the task group has ended: tasks whose runner never started end ``cancelled`` too."""
        for task_id in self._table.unfinished_ids():
            self._table.move(task_id, TaskState.CANCELLED, note="the server shut down before the task ended")


@asynccontextmanager
async def open_registry(
    settings: Settings,
    backends: Roster | Backend,
    prices: PriceTable | None = None,
    files: FileReader | None = None,
    store: TaskStore | None = None,
) -> AsyncGenerator[TaskRegistry, None]:
    """Open the registry and its task group; on exit cancel every unfinished task and wait for them.

    ``backends`` may be a single backend, which is then the only one and the default. Without
    ``prices``, ``files`` or ``store``: the built-in prices, a reader of the settings' roots and a
    store in memory.

    An exception from the body is re-raised as itself once the task group has closed, not wrapped in
    an exception group (runners never raise anything but cancellation).
    """
    registry: TaskRegistry | None = None
    error: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            roster = backends if isinstance(backends, Roster) else Roster.single(backends)
            reader = files or FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
            registry = TaskRegistry(
                tg, settings, roster, prices or PriceTable.load(None), reader, store or MemoryStore()
            )
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
