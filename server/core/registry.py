"""The task registry: every task of the server's lifetime, and the task group that runs them.

``open_registry`` opens one anyio task group for the server's lifetime; every task runs in it, bounded
by a ``CapacityLimiter`` (and by its spawn's own limiter when it asked for less). Each task gets its own
cancel scope when it is spawned, before its runner starts, so cancelling a queued task works. A task's
failure is recorded on the task and never reaches the task group: its siblings and the server go on.
On exit every unfinished task ends ``cancelled`` and nothing is left running.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Reversible, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any
from weakref import WeakKeyDictionary

import anyio
import anyio.abc
import anyio.lowlevel

from ..backends import Backend, Traits
from ..backends.roster import Roster
from ..config.pricing import PriceTable
from ..config.settings import Settings
from ..intake.answer_schemas import check_answer_in_worker, repair_request
from ..intake.files import FileReader
from ..intake.prepare import Intake, PlannedTask, prepare, queued_bytes_hint
from ..intake.subagent_prompt import with_dependencies
from .entry import Entry, Group, Spend
from .errors import (
    InvalidInput,
    RegistryClosed,
    TaskFailure,
    UnknownTask,
)
from .failures import InvalidOutput, crashed, dependency_failed, over_budget, timed_out
from .models import (
    CancelOutcome,
    Counts,
    GroupSummary,
    Listing,
    RetryNotice,
    SpawnedTask,
    SpawnReceipt,
    SpawnRequest,
    Statistics,
    SubagentRequest,
    SubagentResult,
    TaskError,
    TaskSnapshot,
    Usage,
)
from .state import ErrorKind, TaskState, can_move

logger = logging.getLogger(__name__)

_MAX_IDS_PER_CALL = 10_000

# How long a spawn's runners wait to start, so that the spawn's own reply is written first.
DISPATCH_DELAY_S = 0.005

# Longest siblings wait, once their cache-warming lead runs, for its answer to begin before they start.
WARM_WAIT_S = 30.0


class _Ending:
    """One task's end, linked to the next one. The registry holds only the open end of the chain;
    a waiter keeps the node it started from and walks forward, so it sees each end exactly once
    however many tasks end while it is busy, and does work only for ends, not for every task."""

    __slots__ = ("event", "next", "task_id")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.task_id = ""
        self.next: _Ending | None = None


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(12)}"


class TaskRegistry:
    """Spawns, tracks, cancels and evicts tasks. Create it with ``open_registry``."""

    def __init__(
        self,
        task_group: anyio.abc.TaskGroup,
        settings: Settings,
        backends: Roster,
        prices: PriceTable,
        files: FileReader,
    ) -> None:
        self._tg = task_group
        self._settings = settings
        self._backends = backends
        self._prices = prices
        self._reader = files
        self._limiter = anyio.CapacityLimiter(settings.max_concurrency)
        self._bounds: WeakKeyDictionary[Traits, anyio.CapacityLimiter] = WeakKeyDictionary()
        self._tasks: dict[str, Entry] = {}
        self._groups: dict[str, Group] = {}
        self._finished: deque[tuple[str, float]] = deque()
        self._per_state = dict.fromkeys(TaskState, 0)  #: tasks kept, per state (see _recount)
        self._unfinished = 0
        self._held_bytes = 0  #: what unfinished tasks hold: their own text, their spawns' shared part
        self._running = 0
        self._ending = _Ending()
        self._closed = False
        self._retry_listeners: list[Callable[[RetryNotice], None]] = []
        self._on_restart = self._retrying  # one bound method for every entry, not one each

    def on_retry(self, listener: Callable[[RetryNotice], None]) -> None:
        """Tell ``listener`` of every retry of every task, as it happens (before the wait).

        It is called synchronously from the retrying task, so it must be quick and must not block; what
        it raises is logged and ignored. Every retry is also logged on this module's logger: at WARNING,
        or at INFO when the provider only asked for less load (429/529, which a big fan-out meets as a
        matter of course and the throttle answers).
        """
        self._retry_listeners.append(listener)

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
        self._check_accepting(len(request.tasks))
        roster = self._backends.with_extra(extra_backends or {})
        room = self._settings.max_queued_bytes - self._held_bytes
        intake = await prepare(request, self._settings, self._reader, roster, room)
        self._check_accepting(len(intake.tasks))  # the file reads awaited: check again
        self._check_room(intake)
        if intake.budget_usd is not None:
            unpriced = sorted(
                {m for p in intake.tasks if (m := p.spec.model) and self._prices.price(m) is None}
            )
            if unpriced:
                intake.warnings.append(
                    f"budget_usd counts only priced calls; the price of {', '.join(unpriced)} is unknown, so "
                    "their cost is not counted against it (add it with --prices)."
                )
        group = self._register(intake)
        tasks = [
            SpawnedTask(task_id=i, label=self._tasks[i].spec.label, state=self._tasks[i].state)
            for i in group.task_ids
        ]
        return SpawnReceipt(group_id=group.id, tasks=tasks, warnings=intake.warnings)

    async def spawn_planned(self, planned: Sequence[PlannedTask]) -> list[str]:
        """Start tasks the engine planned itself (a synthesis) as a group of their own; their ids."""
        self._check_accepting(len(planned))
        group = self._register(Intake(list(planned), warm_first=False, max_concurrency=None, warnings=[]))
        return list(group.task_ids)

    def _check_accepting(self, count: int) -> None:
        if self._closed:
            raise RegistryClosed("the server is shutting down and starts no new tasks")
        limit = self._settings.max_unfinished
        if self._unfinished + count > limit:
            raise InvalidInput(
                f"{self._unfinished} tasks are still queued or running and this spawn would pass the "
                f"server's limit of {limit} unfinished tasks; collect or cancel some first."
            )

    def _check_room(self, intake: Intake) -> None:
        spawn = intake.shared_bytes + sum(planned.held_bytes for planned in intake.tasks)
        limit = self._settings.max_queued_bytes
        if self._held_bytes + spawn > limit:
            raise InvalidInput(
                f"this spawn's tasks, shared context and files take {spawn} bytes, and unfinished tasks "
                f"already hold {self._held_bytes}. {queued_bytes_hint(self._settings)}"
            )

    def _register(self, intake: Intake) -> Group:
        limiter = anyio.CapacityLimiter(intake.max_concurrency) if intake.max_concurrency else None
        group = Group(
            id=_new_id("g"),
            task_ids=[],
            limiter=limiter,
            budget_usd=intake.budget_usd,
            shared_bytes=intake.shared_bytes,
        )
        self._held_bytes += intake.shared_bytes
        leads: dict[tuple[str, str], anyio.Event] = {}
        entries: list[Entry] = []
        for planned in intake.tasks:
            entry = Entry(
                id=_new_id("t"),
                group=group,
                spec=planned.spec,
                backend=planned.backend,
                prices=self._prices,
                planned=planned,
                held_bytes=planned.held_bytes,
                on_restart=self._on_restart,
            )
            self._held_bytes += entry.held_bytes
            entries.append(entry)
        for entry in entries:
            entry.deps = tuple(entries[i] for i in entry.spec.depends_on)
            # A dependant starts late anyway: it neither warms the cache nor waits for a warm-up.
            caches = entry.backend is not None and entry.backend.traits.caches_prompts
            if intake.warm_first and not entry.deps and caches:
                self._link_warmup(entry, leads)
            group.task_ids.append(entry.id)
            self._tasks[entry.id] = entry
        group.live = len(group.task_ids)
        group.per_state[TaskState.QUEUED] = group.live
        self._per_state[TaskState.QUEUED] += group.live
        self._groups[group.id] = group
        self._unfinished += group.live
        self._tg.start_soon(self._dispatch, entries, name=f"fanout dispatch {group.id}")
        return group

    async def _dispatch(self, entries: list[Entry]) -> None:
        # Start the runners one at a time, yielding in between: started all at once, their first steps
        # (building and sending a request each) would all run before the spawn's own reply is written.
        # The short pause first lets that reply go out before any of them (a few ms against the seconds
        # a model takes).
        await anyio.sleep(DISPATCH_DELAY_S)
        for entry in entries:
            self._tg.start_soon(self._run, entry, name=f"fanout task {entry.id}")
            await anyio.lowlevel.checkpoint()

    def _bound(self, traits: Traits) -> anyio.CapacityLimiter:
        """The limiter of a backend's own bound: one per traits record (see ``Traits``)."""
        limiter = self._bounds.get(traits)
        if limiter is None:
            limiter = self._bounds[traits] = anyio.CapacityLimiter(traits.max_concurrency or 1)
        return limiter

    @staticmethod
    def _link_warmup(entry: Entry, leads: dict[tuple[str, str], anyio.Event]) -> None:
        # The first task of each backend and model goes first; its siblings start once its answer
        # begins, when the shared prefix is in the provider's cache, so they read it instead of each
        # paying to write it.
        key = (entry.spec.backend, entry.spec.model)
        gate = leads.get(key)
        if gate is None:
            entry.opens = leads[key] = anyio.Event()
        else:
            entry.warm_gate = gate

    # --- running -----------------------------------------------------------------------------------

    async def _run(self, entry: Entry) -> None:
        scope = entry.scope
        if scope is None:  # cancelled while queued, before this runner got to start
            return
        with scope:
            try:
                await self._execute(entry)
            except anyio.get_cancelled_exc_class():
                # Synchronous bookkeeping only: nothing here awaits, so no shield is needed.
                if not entry.state.terminal:
                    self._move(entry, TaskState.CANCELLED, note=entry.cancel_note or "cancelled")
                raise

    async def _execute(self, entry: Entry) -> None:
        if entry.deps and not await self._dependencies_done(entry):
            return
        if entry.warm_gate is not None:
            await entry.warm_gate.wait()  # opened by the lead's answer, its end, or _open_later
        backend = entry.backend
        if backend is None:  # it ended while it waited (cancelled, or its budget was spent)
            await anyio.lowlevel.checkpoint()
            return
        async with AsyncExitStack() as stack:
            # A batch request waits on the provider's side: it takes none of the server's slots, and a
            # spawn's max_concurrency would only split its batch into many.
            traits = backend.traits
            if entry.group.limiter is not None and traits.shares_server_limit:
                await stack.enter_async_context(entry.group.limiter)
            if traits.max_concurrency is not None:
                await stack.enter_async_context(self._bound(traits))
            if traits.shares_server_limit:
                await stack.enter_async_context(self._limiter)
            planned = entry.planned
            if planned is None:  # cancelled while it waited; the cancellation arrives at the next await
                await anyio.lowlevel.checkpoint()
                return
            if entry.group.over_budget:
                self._stop_for_budget(entry)
                return
            self._move(entry, TaskState.RUNNING)
            # Written now, not when queued: a running task's prompt is the only copy of its file texts.
            request = self._write_request(entry, planned)
            try:
                with anyio.fail_after(entry.spec.timeout_s):
                    result, structured = await self._answer(entry, backend, request)
            except TimeoutError:
                self._move(entry, TaskState.FAILED, error=timed_out(entry))
            except InvalidOutput as invalid:
                self._move(entry, TaskState.FAILED, output=invalid.text, error=invalid.error)
            except TaskFailure as failure:
                error = TaskError(kind=failure.kind, message=failure.message)
                self._move(entry, TaskState.FAILED, error=error)
            except Exception as exc:  # a backend bug must not take down the siblings or the server
                logger.exception("task %s crashed", entry.id)
                self._move(entry, TaskState.FAILED, error=crashed(exc))
            else:
                self._complete(entry, result, structured)

    async def _dependencies_done(self, entry: Entry) -> bool:
        """Wait for the dependencies; give this task their answers, or fail it as soon as one fails."""
        node = self._ending
        while True:
            failed = next(
                (d for d in entry.deps if d.state.terminal and d.state is not TaskState.COMPLETED), None
            )
            if failed is not None or all(d.state is TaskState.COMPLETED for d in entry.deps):
                break
            await node.event.wait()
            while node.next is not None:
                node = node.next
        if failed is not None:
            self._move(entry, TaskState.FAILED, error=dependency_failed(failed))
            return False
        return entry.planned is not None  # None: it ended (cancelled) while it waited

    def _write_request(self, entry: Entry, planned: PlannedTask) -> SubagentRequest:
        """The task's request with its prompt written, and its dependencies' answers (all completed)."""
        prompt = planned.write_prompt()
        if entry.deps:
            answers = [(dep.id, dep.spec.label, dep.output or "") for dep in entry.deps]
            prompt = with_dependencies(prompt, answers, self._settings.synthesis_input_chars)
        return replace(planned.request, prompt=prompt)

    async def _answer(
        self, entry: Entry, backend: Backend, request: SubagentRequest
    ) -> tuple[SubagentResult, Any]:
        """Run the backend; an answer that breaks the task's output schema gets one repair call."""
        result = await backend.run(request, entry)
        schema, known = entry.spec.output_schema, entry.spec.known_sources
        if schema is None:
            return result, None
        value, problem = await check_answer_in_worker(result.text, schema, known)
        if problem is None:
            return result, value
        entry.begin_repair(
            result.text, f"the answer did not fit its output schema; asking once more ({problem})"
        )
        # An empty assistant turn is refused by the API: say that there was none.
        follow_up = (result.text.strip() or "(no answer)", repair_request(problem, schema))
        repaired = await backend.run(replace(request, follow_up=follow_up), entry)
        value, problem = await check_answer_in_worker(repaired.text, schema, known)
        if problem is not None:
            raise InvalidOutput(repaired.text, problem)
        return repaired, value

    def _stop_for_budget(self, entry: Entry) -> None:
        self._move(
            entry,
            TaskState.CANCELLED,
            note="not started: the spawn's budget was spent",
            error=over_budget(entry.group),
        )

    def _retrying(self, entry: Entry) -> None:
        cause = entry.retry_cause or ErrorKind.API_ERROR
        level = logging.INFO if cause is ErrorKind.RATE_LIMITED else logging.WARNING
        note = entry.note or ""
        logger.log(level, "task %s (%s) retrying [%s]: %s", entry.id, entry.spec.label, cause.value, note)
        notice = RetryNotice(entry.id, entry.group.id, entry.spec.label, entry.attempts, cause, note)
        for listener in self._retry_listeners:
            try:
                listener(notice)
            except Exception:  # a listener's bug must not fail the task that is retrying
                logger.exception("a retry listener failed")

    @staticmethod
    async def _open_later(gate: anyio.Event) -> None:
        # Normally a lead's answer begins within seconds of it starting to run; one stuck before its
        # first byte must not hold its siblings back for its whole timeout.
        with anyio.move_on_after(WARM_WAIT_S):
            await gate.wait()  # ends the timer as soon as the gate opens the normal way
        gate.set()

    def _complete(self, entry: Entry, result: SubagentResult, structured: Any) -> None:
        note = None
        if result.stop_reason == "max_tokens":
            note = "the answer hit max_tokens and is cut short; raise max_tokens to get all of it"
        entry.model = result.model
        entry.structured = structured
        self._move(entry, TaskState.COMPLETED, output=result.text, stop_reason=result.stop_reason, note=note)

    def _move(
        self,
        entry: Entry,
        target: TaskState,
        *,
        output: str | None = None,
        stop_reason: str | None = None,
        error: TaskError | None = None,
        note: str | None = None,
    ) -> None:
        """The one place a task's state changes."""
        if not can_move(entry.state, target):
            raise RuntimeError(f"task {entry.id}: illegal transition {entry.state} -> {target}")
        self._recount(entry.group, entry.state, target)
        was_running = entry.state is TaskState.RUNNING
        entry.state = target
        if target is TaskState.RUNNING:
            self._running += 1
            entry.started = time.monotonic()
            entry.attempts = 1
            if entry.opens is not None:
                self._tg.start_soon(self._open_later, entry.opens, name=f"warm-up timer {entry.id}")
            return
        self._running -= was_running
        entry.ended = time.monotonic()
        entry.finished_at = time.time()
        entry.output = output if output is not None else entry.text
        entry.stop_reason, entry.error = stop_reason, error
        entry.note = note if note is not None else (entry.note if target is not TaskState.COMPLETED else None)
        # The prompt and buffers are not needed any more, nor the backend (a sampling one holds a session).
        entry.planned = entry.scope = entry.chunks = entry.backend = None
        entry.deps = ()
        self._release(entry)
        if entry.opens is not None:
            entry.opens.set()  # a lead that ended without answering still lets its siblings go
        entry.done.set()
        self._unfinished -= 1
        self._finished.append((entry.id, entry.finished_at))
        ended, self._ending = self._ending, _Ending()
        ended.task_id, ended.next = entry.id, self._ending
        ended.event.set()
        self._evict()
        if entry.group.over_budget and not entry.group.budget_stopped:
            self._stop_queued_for_budget(entry.group)

    def _release(self, entry: Entry) -> None:
        """An ended task's bytes, and its spawn's shared ones once the spawn's last task has ended."""
        group = entry.group
        self._held_bytes -= entry.held_bytes + (group.shared_bytes if group.unfinished == 0 else 0)

    def _recount(self, group: Group, old: TaskState, new: TaskState | None) -> None:
        """One task moved from ``old`` to ``new`` (None: evicted). The per-state counts are kept as
        tasks move, so that a listing's counts cost nothing however many tasks are kept."""
        for tally in (self._per_state, group.per_state):
            tally[old] -= 1
            if new is not None:
                tally[new] += 1

    def _stop_queued_for_budget(self, group: Group) -> None:
        """The budget is spent: every task of the group that has not started ends now, not at its turn."""
        # Set first: ending them runs _move, which must not start this again. Once is enough, since no
        # task joins a group after it was registered and spending only grows.
        group.budget_stopped = True
        for task_id in group.task_ids:
            entry = self._tasks.get(task_id)
            if entry is not None and entry.state is TaskState.QUEUED:
                scope = entry.scope
                self._stop_for_budget(entry)
                if scope is not None:
                    scope.cancel()

    # --- reading -----------------------------------------------------------------------------------

    def select(self, task_ids: Sequence[str] | None, group_id: str | None) -> list[str]:
        """Resolve ``task_ids`` xor ``group_id`` into known task ids.

        Raises:
            InvalidInput: both or neither given, or an empty or oversized list.
            UnknownTask: an id the registry does not know.
        """
        self._evict()
        if (task_ids is None) == (group_id is None):
            raise InvalidInput(
                "give exactly one of task_ids (a list of ids from spawn_parallel) or group_id (its "
                "group_id), not " + ("both" if task_ids is not None else "neither")
            )
        if group_id is not None:
            return self._group_tasks(group_id)
        assert task_ids is not None
        if not task_ids:
            raise InvalidInput("task_ids is empty; pass the ids spawn_parallel returned, or a group_id")
        if len(task_ids) > _MAX_IDS_PER_CALL:
            raise InvalidInput(f"task_ids has {len(task_ids)} ids; pass at most {_MAX_IDS_PER_CALL} per call")
        unknown = [task_id for task_id in dict.fromkeys(task_ids) if task_id not in self._tasks]
        if unknown:
            raise UnknownTask(self._unknown_message(unknown))
        return list(dict.fromkeys(task_ids))

    def _group_tasks(self, group_id: str) -> list[str]:
        return [task_id for task_id in self._group(group_id).task_ids if task_id in self._tasks]

    def _group(self, group_id: str) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            hint = " That is a task id: pass it in task_ids." if group_id in self._tasks else ""
            raise UnknownTask(
                f"no group with id {group_id!r}.{hint} Call list_tasks to see the current groups; finished "
                f"tasks are kept for {self._settings.retention_s:g} s."
            )
        return group

    def _unknown_message(self, unknown: list[str]) -> str:
        shown = ", ".join(repr(task_id) for task_id in unknown[:5])
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        hint = ""
        if any(task_id in self._groups for task_id in unknown):
            hint = " One of them is a group id: pass it as group_id instead."
        return (
            f"no task with id {shown}{more}.{hint} Call list_tasks to see the current ids; finished tasks "
            f"are kept for {self._settings.retention_s:g} s."
        )

    def snapshot(self, task_id: str) -> TaskSnapshot:
        entry = self._tasks.get(task_id)
        if entry is None:
            raise UnknownTask(self._unknown_message([task_id]))
        return entry.snapshot()

    def snapshots(self, task_ids: Sequence[str]) -> list[TaskSnapshot]:
        return [self._tasks[task_id].snapshot() for task_id in task_ids if task_id in self._tasks]

    def list(
        self, group_id: str | None = None, state: TaskState | None = None, limit: int | None = None
    ) -> Listing:
        """Tasks in spawn order, optionally of one group and/or in one state; the newest ``limit``.

        The counts are kept as tasks move, and the tasks are read newest first until ``limit`` are found,
        so a listing costs what it returns, not what the registry holds (with a ``state``, what it skips
        to find them too).
        """
        self._evict()
        ids: Reversible[str] = self._tasks
        tally = self._per_state
        if group_id is not None:
            group = self._group(group_id)
            ids, tally = group.task_ids, group.per_state
        counts = Counts.of_tally(tally if state is None else {state: tally[state]})
        total = sum(tally.values()) if state is None else tally[state]
        wanted = total if limit is None else max(0, min(limit, total))
        shown: list[Entry] = []
        for task_id in reversed(ids):
            if len(shown) == wanted:
                break
            entry = self._tasks.get(task_id)  # a group's evicted tasks are skipped
            if entry is not None and (state is None or entry.state is state):
                shown.append(entry)
        return Listing([e.snapshot() for e in reversed(shown)], total, counts)

    def counts(self, task_ids: Sequence[str]) -> Counts:
        return Counts.of([self._tasks[i].state for i in task_ids if i in self._tasks])

    def ids_by_state(self, task_ids: Sequence[str]) -> dict[TaskState, list[str]]:
        """The known ids of ``task_ids`` per state (every state, in their order), without a snapshot."""
        by_state: dict[TaskState, list[str]] = {state: [] for state in TaskState}
        for task_id in task_ids:
            entry = self._tasks.get(task_id)
            if entry is not None:
                by_state[entry.state].append(task_id)
        return by_state

    def group_summary(self, group_id: str) -> GroupSummary:
        """A spawn's size, the usage of every call of its tasks (evicted ones too) and its budget.

        Kept as tasks report usage, so it costs the same for a group of one or of thousands.
        """
        group = self._groups.get(group_id)
        if group is None:
            raise UnknownTask(f"no group with id {group_id!r}")
        return GroupSummary(
            group_id, len(group.task_ids), group.spend.usage(), group.budget_usd, round(group.spent_usd, 6)
        )

    def groups_of(self, task_ids: Sequence[str]) -> list[str]:
        """The groups these tasks belong to, in order of first appearance."""
        return list(dict.fromkeys(self._tasks[i].group.id for i in task_ids if i in self._tasks))

    def usage(self, task_ids: Sequence[str]) -> Usage:
        total = Spend()
        for task_id in task_ids:
            entry = self._tasks.get(task_id)
            if entry is not None:
                total.add(entry.spend, entry.spend.cost_usd)
        return total.usage()

    def statistics(self) -> Statistics:
        running = self._running
        return Statistics(
            queued=self._unfinished - running,
            running=running,
            finished=len(self._finished),
            capacity=int(self._limiter.total_tokens),
            held_bytes=self._held_bytes,
        )

    # --- waiting and cancelling ----------------------------------------------------------------------

    async def wait(
        self, task_ids: Sequence[str], on_change: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Return once every task in ``task_ids`` has ended. Bound it with ``move_on_after``.

        ``on_change`` is awaited each time some of them end.
        """
        # Take the chain's open end before looking at any state: every task that ends after this line
        # is on the chain from here, even if it ends while on_change is awaiting.
        node = self._ending
        pending = {i for i in task_ids if i in self._tasks and not self._tasks[i].state.terminal}
        while pending:
            await node.event.wait()
            before = len(pending)
            while node.next is not None:  # every end since the last look, each seen once
                pending.discard(node.task_id)
                node = node.next
            if len(pending) != before and on_change is not None:
                await on_change()

    def cancel(self, task_ids: Sequence[str], reason: str = "cancelled by cancel_tasks") -> CancelOutcome:
        """Cancel every unfinished task of ``task_ids``; a queued one ends at once, a running one soon."""
        cancelled: list[str] = []
        finished: list[TaskSnapshot] = []
        # Look every entry up first: ending a queued task can evict an old finished one further down the list.
        for entry in [self._tasks[task_id] for task_id in task_ids]:
            task_id = entry.id
            if entry.state.terminal:
                finished.append(entry.snapshot())
                continue
            entry.cancel_note = reason
            scope = entry.scope
            if entry.state is TaskState.QUEUED:
                self._move(entry, TaskState.CANCELLED, note=reason)
            if scope is not None:
                scope.cancel()
            cancelled.append(task_id)
        return CancelOutcome(cancelled, finished)

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse new spawns and cancel everything that runs."""
        self._closed = True
        self._tg.cancel_scope.cancel()

    def sweep(self) -> None:
        """After the task group has ended: tasks whose runner never started end ``cancelled`` too."""
        for entry in list(self._tasks.values()):
            if not entry.state.terminal:
                self._move(entry, TaskState.CANCELLED, note="the server shut down before the task ended")

    def _evict(self) -> None:
        horizon = time.time() - self._settings.retention_s
        limit = self._settings.max_finished
        finished = self._finished
        while finished and (len(finished) > limit or finished[0][1] < horizon):
            task_id, _ = finished.popleft()
            entry = self._tasks.pop(task_id, None)
            if entry is None:
                continue
            group = entry.group
            self._recount(group, entry.state, None)
            group.live -= 1
            if group.live == 0:
                del self._groups[group.id]


@asynccontextmanager
async def open_registry(
    settings: Settings,
    backends: Roster | Backend,
    prices: PriceTable | None = None,
    files: FileReader | None = None,
) -> AsyncGenerator[TaskRegistry, None]:
    """Open the registry and its task group; on exit cancel every unfinished task and wait for them.

    ``backends`` may be a single backend, which is then the only one and the default. Without
    ``prices`` or ``files``, the built-in prices and a reader of the settings' roots.

    An exception from the body is re-raised as itself once the task group has closed, not wrapped in
    an exception group (runners never raise anything but cancellation).
    """
    registry: TaskRegistry | None = None
    error: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            roster = backends if isinstance(backends, Roster) else Roster.single(backends)
            reader = files or FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
            registry = TaskRegistry(tg, settings, roster, prices or PriceTable.load(None), reader)
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
