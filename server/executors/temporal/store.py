"""The front end's view of tasks that run on Temporal: a ``MemoryStore`` whose records are copies.

Every record here mirrors a task of a group workflow (``workflows.py``), whichever front end spawned
it: ``put`` keeps a new spawn and ``flush`` starts its workflow (the spawn's ids are returned once the
workflow exists); ``refresh`` and ``refresh_group`` read the groups named (a task id names its group:
``wire.task_ids``); ``listing`` reads the newest groups of an owner on this task queue (one deployment),
found through Temporal's visibility (the ``FanoutOwner`` search attribute); ``keep_in_step`` reads the
groups with unfinished tasks every ``TICK_S``. A read is the workflow's description (its status, and the
heartbeats of running tasks: their partial output and usage) and its ``view`` query while it runs, or
its result once it has ended. What moved is applied with the ``MemoryStore``'s own moves, so waiters see
each end once, as for tasks of this process.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Final

import anyio
import anyio.abc
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from ...core.errors import BackendUnavailable
from ...core.models import TaskError
from ...core.records import GroupRecord, Spend, TaskRecord
from ...core.state import ErrorKind, TaskState
from ...core.store import MemoryStore, Outcome
from . import codec, wire
from .pending import Activities, Clock

logger = logging.getLogger(__name__)

TICK_S: Final = 0.5  #: how often the groups with unfinished tasks are read
FRESH_S: Final = 0.25  #: how long a read of a small group answers every reader
_LISTED_GROUPS: Final = 200  #: the newest groups a listing reads from visibility
_GROUP_ID: Final = re.compile(r"g-[A-Za-z0-9_-]{1,64}")  #: what a group id this engine made looks like
_RPC: Final = timedelta(seconds=10)
_WORKFLOW_TASK: Final = timedelta(seconds=60)
OWNER: Final = SearchAttributeKey.for_keyword(wire.OWNER_ATTRIBUTE)
SYNTHESIS: Final = SearchAttributeKey.for_keyword(wire.SYNTHESIS_ATTRIBUTE)


class TemporalStore(MemoryStore):
    """The records of tasks that run on Temporal (see the module). Open it with ``open_temporal``."""

    def __init__(self, client: Client, task_queue: str, task_group: anyio.abc.TaskGroup) -> None:
        super().__init__()
        self.client = client
        self._queue = task_queue
        self._tg = task_group
        self._staged: dict[str, wire.GroupSpawn] = {}
        self._watched: set[str] = set()  #: groups with unfinished tasks, read every tick
        self._ended_seen: dict[str, int] = {}  #: how many of a watched group's task ends are applied here
        self._reading: dict[str, anyio.Lock] = {}  #: one read of a group at a time
        self._fresh_until: dict[str, float] = {}  #: until when a group's last read stands (monotonic)
        self._cancel_asked: set[str] = set()  #: unfinished tasks a cancel was asked of (here or elsewhere)
        self._spawned: set[str] = set()  #: the groups spawned here that have unfinished tasks
        self._syntheses: dict[str, str] = {}  #: the group of each model synthesis staged, by its key

    # --- spawning and cancelling ----------------------------------------------------------------------

    def stage(self, spawn: wire.GroupSpawn) -> None:
        """A spawn's workflow input, for ``flush`` to start (the executor makes it)."""
        self._staged[spawn.group_id] = spawn

    async def flush(self) -> None:
        """Start the workflow of every spawn staged.

        Raises:
            BackendUnavailable: Temporal refused or could not be reached; the spawn's tasks end failed.
        """
        staged, self._staged = self._staged, {}
        for spawn in staged.values():
            try:
                await self._start(spawn)
            except RPCError as exc:
                message = (
                    f"the Temporal cluster did not take the spawn ({exc.message}); check --temporal-address"
                )
                self._fail(spawn, message)
                raise BackendUnavailable(message) from None
            self._watched.add(spawn.group_id)
            self._spawned.add(spawn.group_id)

    async def _start(self, spawn: wire.GroupSpawn) -> None:
        pairs = [SearchAttributePair(OWNER, spawn.owner)]
        key = next((k for k, group_id in self._syntheses.items() if group_id == spawn.group_id), None)
        if key is not None:
            pairs.append(SearchAttributePair(SYNTHESIS, key))
        attributes = TypedSearchAttributes(pairs)
        await self.client.start_workflow(
            wire.WORKFLOW,
            spawn,
            id=spawn.group_id,
            task_queue=self._queue,
            search_attributes=attributes,
            # A worker that does not hold the workflow in its cache replays its history first: thousands
            # of events for a large group, which a busy worker may not do in the default 10 s.
            task_timeout=_WORKFLOW_TASK,
        )

    def _fail(self, spawn: wire.GroupSpawn, message: str) -> None:
        error = TaskError(kind=ErrorKind.BACKEND_UNAVAILABLE, message=message)
        for task in spawn.tasks:
            outcome = Outcome(None, None, None, None, error, None, 0, time.time())
            self.move(task.task_id, TaskState.FAILED, time.monotonic(), outcome)

    def request_cancel(self, task_id: str, reason: str) -> None:
        record = self.task(task_id)
        assert record is not None  # the table asks only for a task it holds
        self._cancel_asked.add(task_id)
        self._tg.start_soon(self._cancel, record.group_id, [task_id], reason, name=f"cancel {task_id}")

    async def _cancel(self, group_id: str, task_ids: list[str], reason: str) -> None:
        try:
            await self.client.get_workflow_handle(group_id).signal(
                "cancel", wire.CancelRequest(task_ids, reason), rpc_timeout=_RPC
            )
        except RPCError as exc:  # the group ended meanwhile, or Temporal is away: nothing left to cancel
            logger.warning("cancelling %s of %s: %s", task_ids, group_id, exc.message)

    def remember_synthesis(self, key: str, task_ids: tuple[str, ...]) -> None:
        """Its group's workflow carries ``key`` (a search attribute), for ``recall_synthesis`` anywhere."""
        group_id = wire.group_of(task_ids[-1])
        if group_id is not None:
            self._syntheses[key] = group_id

    async def recall_synthesis(self, key: str) -> tuple[str, ...] | None:
        """The tasks of the model synthesis started under ``key`` by any front end (as far as Temporal's
        visibility shows one started elsewhere: it may lag it by about a second)."""
        group_id = self._syntheses.get(key)
        if group_id is None and re.fullmatch(r"[0-9a-f]{64}", key):
            query = f"{wire.SYNTHESIS_ATTRIBUTE} = '{key}' AND TaskQueue = {_quoted(self._queue)}"
            found = await self._find(query, 1)
            group_id = found[0] if found else None
        if group_id is None:
            return None
        await self.refresh_group(group_id)
        group = self.group(group_id)
        return tuple(group.task_ids) if group is not None else None

    # --- reading --------------------------------------------------------------------------------------

    async def refresh(self, task_ids: Sequence[str]) -> None:
        groups: dict[str, None] = {}  # in order, each once
        for task_id in task_ids:
            record = self.task(task_id)
            if record is None and (group_id := wire.group_of(task_id)) and _GROUP_ID.fullmatch(group_id):
                groups[group_id] = None
            elif record is not None and not record.state.terminal:
                groups[record.group_id] = None
        for group_id in groups:
            await self._read(group_id)

    async def refresh_group(self, group_id: str) -> None:
        group = self.group(group_id)
        if (group is None and _GROUP_ID.fullmatch(group_id)) or group_id in self._watched:
            await self._read(group_id)

    async def listing(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> tuple[Mapping[TaskState, int], list[TaskRecord]]:
        if group_id is None:
            query = f"WorkflowType = '{wire.WORKFLOW}' AND TaskQueue = {_quoted(self._queue)}"
            if owner is not None:
                query += f" AND {wire.OWNER_ATTRIBUTE} = {_quoted(owner)}"
            for found in await self._find(query, _LISTED_GROUPS):
                if self.group(found) is None:
                    await self._read(found)
        return await super().listing(group_id, state, limit, owner)

    async def _find(self, query: str, limit: int) -> list[str]:
        """The ids of the newest ``limit`` workflows that ``query`` (Temporal's list filter) finds.

        Raises:
            BackendUnavailable: Temporal's visibility could not be read.
        """
        try:
            listed = self.client.list_workflows(query, limit=limit, rpc_timeout=_RPC)
            return [execution.id async for execution in listed]
        except RPCError as exc:
            raise BackendUnavailable(f"could not list groups in Temporal ({exc.message})") from None

    async def keep_in_step(self) -> None:
        """Read the groups with unfinished tasks every ``TICK_S``, until cancelled."""
        while True:
            await anyio.sleep(TICK_S)
            for group_id in list(self._watched):
                try:
                    await self._read(group_id)
                except BackendUnavailable as exc:  # read again at the next tick
                    logger.warning("%s", exc)

    async def _read(self, group_id: str) -> None:
        """Bring a group up to what its workflow says, unless another read did a moment ago: every
        client's reads and the tick share one read of a group at a time and then its answer for
        ``_fresh_for`` seconds (a group's description holds every running task's heartbeat).

        Raises:
            BackendUnavailable: Temporal could not be read (the message says what to check).
        """
        lock = self._reading.setdefault(group_id, anyio.Lock())
        async with lock:
            if time.monotonic() < self._fresh_until.get(group_id, 0.0):
                return
            await self._read_now(group_id)
            group = self.group(group_id)
            self._fresh_until[group_id] = time.monotonic() + _fresh_for(len(group.task_ids) if group else 0)

    async def _read_now(self, group_id: str) -> None:
        """Bring a group up to what its workflow says (a group it does not know: nothing).

        Raises:
            BackendUnavailable: Temporal could not be read (the message says what to check).
        """
        handle: WorkflowHandle[object, wire.GroupView] = self.client.get_workflow_handle(
            group_id, result_type=wire.GroupView
        )
        try:
            described = await handle.describe(rpc_timeout=_RPC)
            if described.status is WorkflowExecutionStatus.COMPLETED:
                view = await handle.result(rpc_timeout=_RPC)
            else:
                unknown = self.group(group_id) is None
                ask = wire.ViewAsk(unknown, 0 if unknown else self._ended_seen.get(group_id, 0))
                view = await handle.query("view", ask, result_type=wire.GroupView, rpc_timeout=_RPC)
            activities = Activities.of(described)
            beats = await self._beats(activities.beating)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                self._unwatch(group_id)
                return
            raise _unreadable(group_id, exc.message) from None
        except WorkflowQueryFailedError as exc:
            raise _unreadable(group_id, str(exc)) from None
        if self.group(group_id) is None:
            self._adopt(view)
        self._apply(view, beats, activities)
        self._ended_seen[group_id] = view.ended
        status = described.status
        if status is not None and status not in (
            WorkflowExecutionStatus.RUNNING,
            WorkflowExecutionStatus.COMPLETED,
        ):
            self._interrupt(group_id, f"its workflow ended {status.name.lower()} in Temporal")

    async def _beats(self, beating: Sequence[PendingActivityInfo]) -> dict[str, wire.Beat]:
        """The last heartbeat of each running task (its activity id is the task id)."""
        beats: dict[str, wire.Beat] = {}
        for pending in beating:
            decoded = await self.client.data_converter.decode(pending.heartbeat_details.payloads, [wire.Beat])
            beats[pending.activity_id] = decoded[-1]
        return beats

    def cancel_asked(self, task_id: str) -> bool:
        return task_id in self._cancel_asked

    def elsewhere(self) -> tuple[int, int]:
        queued = running = 0
        for group_id in self._spawned & self._watched:
            tally = self.tally(group_id)
            queued, running = queued + tally[TaskState.QUEUED], running + tally[TaskState.RUNNING]
        return queued, running

    def _adopt(self, view: wire.GroupView) -> None:
        """A group this front end has not seen: its records, all queued (``_apply`` moves them)."""
        ids = [task.task_id for task in view.tasks]
        group = GroupRecord(view.group_id, ids, view.owner, budget_usd=view.budget_usd)
        records = [
            TaskRecord(
                task.task_id,
                view.group_id,
                codec.spec_of(task.spec_json or ""),
                view.owner,
                tuple(task.depends_on),
            )
            for task in view.tasks
        ]
        self.put(group, records)
        self._watched.add(view.group_id)

    def _apply(
        self, view: wire.GroupView, beats: Mapping[str, wire.Beat], activities: Activities | None = None
    ) -> None:
        """Bring the records up to ``view``: moves, ends (raised on the chain), partial output, usage.
        ``activities`` (none for a finished workflow) say which tasks a worker has started: the workflow
        counts a task running once it asked for its activity, which may wait for a free worker."""
        clock = Clock()
        for task in view.tasks:
            record = self.task(task.task_id)
            if record is None or record.state.terminal:  # evicted, or already ended here
                continue
            started = task.started_at
            if activities is not None and task.end is None:
                started = activities.started.get(task.task_id)
                if task.task_id in activities.cancelling:
                    self._cancel_asked.add(task.task_id)
            if started is not None and record.state is TaskState.QUEUED:
                self.move(task.task_id, TaskState.RUNNING, clock.monotonic(started))
            if task.end is not None and task.ended_at is not None:
                self._cancel_asked.discard(task.task_id)
                record.spend = codec.spend_of(task.end.spend)
                self.move(
                    task.task_id,
                    TaskState(task.state),
                    clock.monotonic(task.ended_at),
                    codec.outcome_of(task.end, task.ended_at),
                )
            elif (beat := beats.get(task.task_id)) is not None:
                record.output, record.note, record.attempts, record.model = (
                    beat.text,
                    beat.note,
                    beat.attempts,
                    beat.model,
                )
                record.spend = codec.spend_of(beat.spend)
        self._total(view.group_id)

    def _interrupt(self, group_id: str, reason: str) -> None:
        """End ``interrupted`` the unfinished tasks of a workflow that ended without them (an operator
        terminated it, or it failed)."""
        group = self.group(group_id)
        for task_id in group.task_ids if group is not None else ():
            record = self.task(task_id)
            if record is not None and not record.state.terminal:
                self.interrupt(task_id, reason, time.monotonic())
            self._cancel_asked.discard(task_id)
        self._unwatch(group_id)

    def _total(self, group_id: str) -> None:
        """The group's usage, from its tasks' (kept ones: a group's evicted tasks ended, and stay counted
        in what was added before)."""
        group = self.group(group_id)
        if group is None:
            return
        total = Spend()
        known = 0.0
        records = [r for task_id in group.task_ids if (r := self.task(task_id)) is not None]
        for record in records:
            total.add(record.spend, record.spend.cost_usd)
            known += record.spend.cost_usd or 0.0
        group.spend, group.spent_usd = total, known
        if all(record.state.terminal for record in records):
            self._unwatch(group_id)

    def _unwatch(self, group_id: str) -> None:
        self._watched.discard(group_id)
        self._reading.pop(group_id, None)
        self._fresh_until.pop(group_id, None)
        self._spawned.discard(group_id)
        self._ended_seen.pop(group_id, None)


def _fresh_for(tasks: int) -> float:
    """How long a read of a group of ``tasks`` stands: a quarter second, and a millisecond more for
    every two tasks (a 2,000-task group is read about once a second, however many clients poll it)."""
    return FRESH_S + tasks / 2000


def _unreadable(group_id: str, why: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"could not read group {group_id} from Temporal ({why}); check that the cluster answers and that "
        "a worker polls the task queue (fanout-mcp doctor)"
    )


def _quoted(value: str) -> str:
    """A string literal of Temporal's list filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
