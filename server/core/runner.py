"""The runner: one coroutine per task, from its turn to its end.

A task's runner waits for the task's dependencies and its warm-up gate, takes its concurrency slots (its
spawn's, its backend's, the server's), moves it to running, writes its prompt, calls its backend within
its timeout (with one repair call for an answer that breaks its output schema) and moves it to its end.
Every runner runs in the registry's task group, inside the task's own cancel scope; a task's failure is
recorded on the task and never reaches the task group.

The runner owns the warm-up timer and what an end means for other tasks: the end hooks it gives the
table open a lead's siblings' gate and stop a spawn whose budget is spent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from weakref import WeakKeyDictionary

import anyio
import anyio.abc
import anyio.lowlevel

from ..backends import Traits
from ..config.pricing import PriceTable
from ..config.settings import Settings
from ..intake.prepare import Intake
from ..intake.subagent_prompt import with_dependencies
from .attempt import attempt
from .failures import dependency_failed, over_budget
from .live import Live
from .models import RetryNotice, SubagentRequest
from .progress import Progress
from .records import GroupRecord, TaskRecord, new_id
from .state import TaskState
from .table import EndHook, TaskTable

# How long a spawn's runners wait to start, so that the spawn's own reply is written first.
DISPATCH_DELAY_S = 0.005

SHUTDOWN_NOTE = "the server shut down before the task ended"

# Longest siblings wait, once their cache-warming lead runs, for its answer to begin before they start.
WARM_WAIT_S = 30.0


@dataclass(slots=True, eq=False)
class _Spawn:
    """What the runner keeps of one spawn while any of its tasks is unfinished."""

    limiter: anyio.CapacityLimiter | None  #: the spawn's own max_concurrency
    left: int  #: its tasks not yet ended
    budget_stopped: bool = False  #: its budget was spent and its queued tasks ended (once: none can join)


class Runner:
    """Runs every task of the registry, each in its own cancel scope in the registry's task group."""

    def __init__(
        self,
        task_group: anyio.abc.TaskGroup,
        table: TaskTable,
        settings: Settings,
        prices: PriceTable,
        on_retry: Callable[[RetryNotice], None],
    ) -> None:
        self._tg = task_group
        self._table = table
        self._prices = prices
        self._on_retry = on_retry
        self._dependency_chars = settings.synthesis_input_chars
        self._limiter = anyio.CapacityLimiter(settings.max_concurrency)
        self._bounds: WeakKeyDictionary[Traits, anyio.CapacityLimiter] = WeakKeyDictionary()
        self._spawns: dict[str, _Spawn] = {}
        self._unsaved: dict[str, anyio.Event] = {}  #: spawns whose runners wait for the store's write
        self.shutting_down = False  #: set by the registry as it closes: what is cancelled now is interrupted

    @property
    def capacity(self) -> int:
        return int(self._limiter.total_tokens)

    # --- a new spawn ------------------------------------------------------------------------------------

    def task_ids(self, group_id: str, count: int) -> list[str]:
        return [new_id("t") for _ in range(count)]

    def prepare(
        self, intake: Intake, records: Sequence[TaskRecord], outside: Sequence[TaskRecord] = ()
    ) -> list[Live]:
        """The live part of each task of a spawn: its request, dependencies and warm-up gate.
        ``outside``: the tasks of other spawns some of them depend on (a retry's)."""
        leads = intake.warm_leads([record.depends_on for record in records])
        opened: dict[int, anyio.Event] = {}
        lives: list[Live] = []
        tasks = zip(records, intake.tasks, _dependencies(records, outside), strict=True)
        for index, (record, planned, deps) in enumerate(tasks):
            gate, opens = _warm_up(index, leads[index], opened)
            held = planned.held_bytes
            live = Live(record.id, record.group_id, planned, held, deps=deps, warm_gate=gate, opens=opens)
            lives.append(live)
        return lives

    def start(self, group_id: str, lives: Sequence[Live], max_concurrency: int | None) -> None:
        """Start the spawn's runners once it is saved (``saved``) and its reply has gone out."""
        limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
        self._spawns[group_id] = _Spawn(limiter, len(lives))
        self._unsaved[group_id] = saved = anyio.Event()
        self._tg.start_soon(self._dispatch, lives, saved, name=f"fanout dispatch {group_id}")

    def saved(self, group_id: str) -> None:
        """The spawn is in the store (or the store failed to take it, and said so): its runners may go."""
        if (event := self._unsaved.pop(group_id, None)) is not None:
            event.set()

    async def _dispatch(self, lives: Sequence[Live], saved: anyio.Event) -> None:
        # Start the runners one at a time, yielding in between: started all at once, their first steps
        # (building and sending a request each) would all run before the spawn's own reply is written.
        # They wait for the spawn to be saved first: started during the store's write, they would hold
        # the event loop while the spawn waits to return (100 tasks over stdio: 127 ms instead of 13).
        # Then a short pause lets the reply go out before any of them (a few ms against the seconds a
        # model takes).
        await saved.wait()
        await anyio.sleep(DISPATCH_DELAY_S)
        for live in lives:
            self._tg.start_soon(self._run, live, name=f"fanout task {live.task_id}")
            await anyio.lowlevel.checkpoint()

    # --- one task ---------------------------------------------------------------------------------------

    async def _run(self, live: Live) -> None:
        if self._table.ended(live.task_id):  # cancelled while queued, before this runner got to start
            return
        with live.scope:
            try:
                await self._execute(live)
            except anyio.get_cancelled_exc_class():
                # Synchronous bookkeeping only: nothing here awaits, so no shield is needed.
                if not self._table.ended(live.task_id):
                    self._end_cancelled(live)
                raise

    def _end_cancelled(self, live: Live) -> None:
        """A task cancelled: by a caller (its note says why), or by the server shutting down, which
        interrupts it (retry_tasks runs it again)."""
        if live.cancel_note is None and self.shutting_down:
            self._table.move(live.task_id, TaskState.INTERRUPTED, note=SHUTDOWN_NOTE)
        else:
            self._table.move(live.task_id, TaskState.CANCELLED, note=live.cancel_note or "cancelled")

    async def _execute(self, live: Live) -> None:
        if (live.deps or live.warm_gate is not None) and not await self._turn(live):
            return
        async with AsyncExitStack() as stack:
            for limiter in self._slots(live):
                await stack.enter_async_context(limiter)
            if self._table.ended(live.task_id):  # cancelled while it waited: that arrives at the next await
                await anyio.lowlevel.checkpoint()
                return
            group = self._table.group(live.group_id)
            if group is not None and group.over_budget:
                self._stop_for_budget(live.task_id, group)
                return
            progress = self._start(live)
            # Written now, not when queued: a running task's prompt is the only copy of its file texts.
            request = self._write_request(live)
            await self._finish(live, progress, request)

    async def _turn(self, live: Live) -> bool:
        """Wait for the task's dependencies, then its warm-up gate; False if it ended meanwhile. (Only a
        task with dependencies or a warm-up gate has a turn to wait for.)"""
        if live.deps and not await self._dependencies_done(live):
            return False
        if live.warm_gate is not None:
            await live.warm_gate.wait()  # opened by the lead's answer, its end, or _open_later
        if self._table.ended(live.task_id):  # cancelled while it waited, or its budget was spent
            await anyio.lowlevel.checkpoint()
            return False
        return True

    async def _dependencies_done(self, live: Live) -> bool:
        """Wait for the dependencies to complete; fail this task as soon as one does not (False)."""
        node = self._table.ending
        while True:
            failed = next(
                (d for d in live.deps if d.state.terminal and d.state is not TaskState.COMPLETED), None
            )
            if failed is not None or all(d.state is TaskState.COMPLETED for d in live.deps):
                break
            await node.event.wait()
            while node.next is not None:
                node = node.next
        if failed is not None:
            if not self._table.ended(live.task_id):
                self._table.move(live.task_id, TaskState.FAILED, error=dependency_failed(failed))
            return False
        return True

    def _slots(self, live: Live) -> list[anyio.CapacityLimiter]:
        """The limiters a task takes before it runs, in this order: its spawn's, its backend's, the
        server's."""
        traits = live.planned.backend.traits
        spawn = self._spawns[live.group_id].limiter
        slots: list[anyio.CapacityLimiter] = []
        # A batch request waits on the provider's side: it takes none of the server's slots, and a
        # spawn's max_concurrency would only split its batch into many.
        if spawn is not None and traits.shares_server_limit:
            slots.append(spawn)
        if traits.max_concurrency is not None:
            slots.append(self._bound(traits))
        if traits.shares_server_limit:
            slots.append(self._limiter)
        return slots

    def _bound(self, traits: Traits) -> anyio.CapacityLimiter:
        """The limiter of a backend's own bound: one per traits record (see ``Traits``)."""
        limiter = self._bounds.get(traits)
        if limiter is None:
            limiter = self._bounds[traits] = anyio.CapacityLimiter(traits.max_concurrency or 1)
        return limiter

    def _start(self, live: Live) -> Progress:
        """Move the task to running, with the progress its backend reports to; a lead's timer starts."""
        self._table.move(live.task_id, TaskState.RUNNING)
        progress = live.progress = Progress(
            live.task_id,
            live.group_id,
            live.planned.spec.label,
            prices=self._prices,
            record_usage=self._table.record_usage,
            on_retry=self._on_retry,
            opens=live.opens,
        )
        if live.opens is not None:
            self._tg.start_soon(_open_later, live.opens, name=f"warm-up timer {live.task_id}")
        return progress

    def _write_request(self, live: Live) -> SubagentRequest:
        """The task's request with its prompt written, and its dependencies' answers (all completed)."""
        planned = live.planned
        prompt = planned.write_prompt()
        if live.deps:
            answers = [(dep.id, dep.spec.label, dep.output or "") for dep in live.deps]
            prompt = with_dependencies(prompt, answers, self._dependency_chars)
        return replace(planned.request, prompt=prompt)

    async def _finish(self, live: Live, progress: Progress, request: SubagentRequest) -> None:
        """Call the backend within the task's timeout and end the task with what came of it."""
        ended = await attempt(live.planned.backend, request, progress, live.planned.spec)
        self._table.move(
            live.task_id,
            ended.state,
            output=ended.output,
            structured=ended.structured,
            stop_reason=ended.stop_reason,
            model=ended.model,
            error=ended.error,
            note=ended.note,
        )

    # --- end hooks, in the order the registry gives them to the table -------------------------------

    def end_hooks(self) -> tuple[EndHook, ...]:
        # In this order: the lead's gate opens before the budget stop ends queued siblings, and a spawn is
        # forgotten only after that.
        return (self.let_siblings_go, self.stop_spent_spawn, self.forget_ended_spawn)

    def let_siblings_go(self, record: TaskRecord, group: GroupRecord, live: Live) -> None:
        """A cache-warming lead that ended without answering still lets its siblings start."""
        if live.opens is not None:
            live.opens.set()

    def stop_spent_spawn(self, record: TaskRecord, group: GroupRecord, live: Live) -> None:
        """The spawn's budget is spent: every task of it that has not started ends now, not at its turn."""
        spawn = self._spawns.get(group.id)
        if spawn is None or spawn.budget_stopped or not group.over_budget:
            return
        # Set first: ending them calls this hook again. Once is enough, since no task joins a spawn after
        # it was registered and spending only grows.
        spawn.budget_stopped = True
        for task_id in group.task_ids:
            queued = self._table.live(task_id)
            sibling = self._table.task(task_id)
            if queued is not None and sibling is not None and sibling.state is TaskState.QUEUED:
                self._stop_for_budget(task_id, group)
                queued.scope.cancel()

    def forget_ended_spawn(self, record: TaskRecord, group: GroupRecord, live: Live) -> None:
        """A spawn whose last task ended needs no limiter and no budget stop any more."""
        spawn = self._spawns.get(group.id)
        if spawn is not None:
            spawn.left -= 1
            if spawn.left == 0:
                del self._spawns[group.id]

    def _stop_for_budget(self, task_id: str, group: GroupRecord) -> None:
        self._table.move(
            task_id,
            TaskState.CANCELLED,
            note="not started: the spawn's budget was spent",
            error=over_budget(group),
        )


def _dependencies(
    records: Sequence[TaskRecord], outside: Sequence[TaskRecord]
) -> list[tuple[TaskRecord, ...]]:
    """Each record's dependencies (its ``depends_on``), as records."""
    if not any(record.depends_on for record in records):
        return [()] * len(records)
    known = {record.id: record for record in (*records, *outside)}
    return [tuple(known[task_id] for task_id in record.depends_on) for record in records]


def _warm_up(
    index: int, lead: int | None, opened: dict[int, anyio.Event]
) -> tuple[anyio.Event | None, anyio.Event | None]:
    """(the gate to wait for, the gate to open) of the task at ``index``, whose warm-up lead is ``lead``
    (``Intake.warm_leads``; a lead comes before its siblings, so its gate is in ``opened`` by then)."""
    if lead is None:
        return None, None
    if lead == index:
        opened[index] = gate = anyio.Event()
        return None, gate
    return opened[lead], None


async def _open_later(gate: anyio.Event) -> None:
    # Normally a lead's answer begins within seconds of it starting to run; one stuck before its first
    # byte must not hold its siblings back for its whole timeout.
    with anyio.move_on_after(WARM_WAIT_S):
        await gate.wait()  # ends the timer as soon as the gate opens the normal way
    gate.set()
