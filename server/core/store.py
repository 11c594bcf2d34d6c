"""Where the task table keeps its records: one small interface, and the in-memory store behind it.

``TaskStore`` is the seam for other stores (an embedded database, a distributed executor's). What any
implementation must guarantee:

* **Plain records.** It keeps ``TaskRecord`` and ``GroupRecord`` (``records.py``): data that serialises
  (``records.to_json``), with no live object inside. Cancel scopes, events, limiters and progress stay
  with the table and the runner (``live.py``).
* **Synchronous and atomic.** Every operation is a plain call that completes before it returns, and no
  other task of the event loop runs during it: the table relies on that to make each move one step.
* **Writes through its operations only.** ``put`` a spawn, ``move`` a task, ``record_usage`` of a call,
  ``evict``. The records a read returns are for reading; nobody writes them directly.
* **Moves as given.** The table has already checked the transition; ``move`` applies it with its
  timestamp and, for an end, the ``Outcome``, and keeps the per-state tallies exact.
* **Ends raised as events.** Every end is announced on the chain of ``Ending`` nodes (``ending``), once,
  in the order of the moves and after the record shows it. A wait is a walk along the chain, so a
  store whose tasks end elsewhere (another process) raises those ends here as well.
* **Usage added at once.** ``record_usage`` adds a call to its task's and its group's totals together;
  a group's totals include its evicted tasks.
* **Interrupted, not running forever.** A task whose process ended before the task did (a crash, a
  kill) ends ``interrupted``, moved by the store itself: with what the store holds of its output, the
  reason as its note, and its end raised like any other (``MemoryStore.interrupt`` is that move).
* **Eviction of ended tasks only**, oldest end first; a group goes with its last task.
* **Reads cost what they return.** ``tally`` is kept as tasks move; ``newest`` reads the records it
  returns (and those it skips for a state), not the whole store.
* **Reads by owner.** Every record has its ``owner`` (the principal that spawned it). ``tally`` and
  ``newest`` take an ``owner``: given, they count and return only that owner's tasks (kept per owner as
  tasks move, as per group); None means every owner's. That is all the store knows of callers: who may
  see what is the registry's (``callers.py``).
* **Records are the store's own.** ``task`` returns the record that later moves change: the runner
  holds a task's dependencies' records, to read their state and answers after they may be evicted.

What a running task's backend reports as it goes (the partial answer, the status note, the attempts)
stays with the task's ``Progress`` until its end, and reaches the record with the move that ends it: a
store write per streamed chunk would cost more than the chunk. Only usage is written at once (budgets
and totals need it while the task runs). A store that other processes read (``durable/``) asks the
table for the progress that moved, through the ``StoreHooks`` it is given, as often as it writes.

A store may hold records of tasks this process does not run (another process's, or an earlier one's).
Before the registry reads tasks it did not just spawn, it awaits ``refresh`` (or ``refresh_group``,
``listing``): the one place a store may read a disk, off the event loop. The synchronous reads that
follow answer from memory. A cancel of such a task is a ``request_cancel``, which its own process
carries out (it learns of it through its store's ``StoreHooks.cancel``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Reversible, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from .models import TaskError, Tokens
from .records import GroupRecord, TaskRecord
from .state import TaskState


class Ending:
    """One task's end, linked to the next one. The store holds only the open end of the chain; a
    waiter keeps the node it started from and walks forward, so it sees each end exactly once however
    many tasks end while it is busy, and does work only for ends, not for every task."""

    __slots__ = ("event", "next", "task_id")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.task_id = ""
        self.next: Ending | None = None


@dataclass(slots=True)  # not frozen: one is made per end, and a frozen one takes twice as long to make
class Outcome:
    """What an ended task's record gets, all at once, from the move that ends it. A value: never changed."""

    output: str | None
    structured: Any
    stop_reason: str | None
    model: str | None
    error: TaskError | None
    note: str | None
    attempts: int
    finished_at: float  #: wall clock


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """What a running task has said so far, for a store that writes it out."""

    task_id: str
    text: str | None
    note: str | None
    attempts: int


def _no_progress() -> list[ProgressReport]:
    return []


def _no_cancels(requests: list[tuple[str, str]]) -> None:
    raise AssertionError(f"no other process can ask this store to cancel {requests}")


@dataclass(frozen=True, slots=True)
class StoreHooks:
    """What a store may ask of the engine: the running tasks whose progress moved since it last asked,
    and to cancel tasks of this process (task id, why) that another process asked to cancel."""

    progress: Callable[[], list[ProgressReport]] = field(default=_no_progress)
    cancel: Callable[[list[tuple[str, str]]], None] = field(default=_no_cancels)


class TaskStore(Protocol):
    """The records of every task and spawn kept, and the chain of their ends (see the module)."""

    @property
    def ending(self) -> Ending:
        """The open end of the chain: set when the next task ends."""
        ...

    def put(self, group: GroupRecord, tasks: Sequence[TaskRecord]) -> None:
        """Add a spawn and its tasks, all queued."""

    def task(self, task_id: str) -> TaskRecord | None: ...

    def group(self, group_id: str) -> GroupRecord | None: ...

    def move(self, task_id: str, target: TaskState, at: float, outcome: Outcome | None = None) -> None:
        """Move a task (the table checked the move): to running at ``at``, or to its end at ``at`` with
        its ``outcome``. ``at`` is the monotonic clock."""

    def record_usage(self, task_id: str, tokens: Tokens, cost_usd: float | None) -> None:
        """One provider call of a task: add it to the task's totals and to its group's."""

    def tally(self, group_id: str | None = None, owner: str | None = None) -> Mapping[TaskState, int]:
        """Tasks kept per state: of one group, else of one owner, else of all."""
        ...

    def newest(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> list[TaskRecord]:
        """The newest ``limit`` tasks kept (of a group, in a state, of an owner), in spawn order."""
        ...

    def finished(self) -> int:
        """How many ended tasks are kept."""
        ...

    def evict(self, ended_before: float, keep: int) -> None:
        """Forget ended tasks that ended before ``ended_before`` (wall clock) or beyond the newest
        ``keep``, oldest first."""

    def attach(self, hooks: StoreHooks) -> None:
        """What the store may ask of the engine (see ``StoreHooks``); given once, by the registry."""

    def request_cancel(self, task_id: str, reason: str) -> None:
        """Ask the process that runs ``task_id`` (not this one) to cancel it."""

    def cancel_asked(self, task_id: str) -> bool:
        """Whether a cancel of ``task_id``, unfinished and running elsewhere, was asked, as far as this
        store knows (a task running here says so itself)."""
        ...

    def elsewhere(self) -> tuple[int, int]:
        """The tasks this process spawned that are queued and running elsewhere (on Temporal's
        workers), for its limits and statistics: those running here it counts itself."""
        ...

    def remember_synthesis(self, key: str, task_ids: tuple[str, ...]) -> None:
        """A model synthesis started under ``key``: its tasks, the last one the answer."""

    async def recall_synthesis(self, key: str) -> tuple[str, ...] | None:
        """The tasks of the model synthesis started under ``key`` by any process, if it is kept."""
        ...

    async def flush(self) -> None:
        """Make every change so far durable (a spawn's tasks before its ids are returned)."""

    async def refresh(self, task_ids: Sequence[str]) -> None:
        """Make the records of ``task_ids`` that this process does not run current (see the module)."""

    async def refresh_group(self, group_id: str) -> None:
        """Make a group this process did not spawn current."""

    async def listing(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> tuple[Mapping[TaskState, int], list[TaskRecord]]:
        """Tasks kept per state (of a group, else of an owner, else all), and the newest ``limit`` of them
        (in a state), of every process."""
        ...


class MemoryStore:
    """The records in this process's memory, for the server's lifetime."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        self._groups: dict[str, GroupRecord] = {}
        self._per_state = dict.fromkeys(TaskState, 0)
        self._group_states: dict[str, dict[TaskState, int]] = {}
        self._owner_states: dict[str, dict[TaskState, int]] = {}
        self._owned: dict[str, dict[str, None]] = {}  #: each owner's task ids kept, in spawn order
        self._finished: deque[tuple[str, float]] = deque()  #: ended tasks kept, oldest end first
        self._ending = Ending()

    @property
    def ending(self) -> Ending:
        return self._ending

    def put(self, group: GroupRecord, tasks: Sequence[TaskRecord]) -> None:
        self._groups[group.id] = group
        self._group_states[group.id] = {**dict.fromkeys(TaskState, 0), TaskState.QUEUED: len(tasks)}
        self._per_state[TaskState.QUEUED] += len(tasks)
        owner = group.owner
        self._owner_states.setdefault(owner, dict.fromkeys(TaskState, 0))[TaskState.QUEUED] += len(tasks)
        owned = self._owned.setdefault(owner, {})
        for record in tasks:
            self._tasks[record.id] = record
            owned[record.id] = None

    def task(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    def group(self, group_id: str) -> GroupRecord | None:
        return self._groups.get(group_id)

    def move(self, task_id: str, target: TaskState, at: float, outcome: Outcome | None = None) -> None:
        record = self._tasks[task_id]
        self._recount(record, record.state, target)
        record.state = target
        if outcome is None:
            record.started = at
            return
        record.ended = at
        record.finished_at = outcome.finished_at
        record.output, record.structured = outcome.output, outcome.structured
        record.stop_reason, record.model = outcome.stop_reason, outcome.model
        record.error, record.note, record.attempts = outcome.error, outcome.note, outcome.attempts
        self._finished.append((task_id, outcome.finished_at))
        self.announce(task_id)

    def announce(self, task_id: str) -> None:
        """Raise a task's end on the chain (this store's tasks' own, or one another process ended)."""
        ended, self._ending = self._ending, Ending()
        ended.task_id, ended.next = task_id, self._ending
        ended.event.set()

    def interrupt(self, task_id: str, reason: str, at: float) -> None:
        """End an unfinished task ``interrupted`` at ``at`` (monotonic), ``reason`` its note, keeping
        what the record holds of its output: what a store that reads tasks run elsewhere does when they can
        no longer end (the Temporal store, for a workflow that ended without them; tests, for a durable
        store's process that died). Nothing calls it on this process's own tasks, which end through the
        table."""
        record = self._tasks[task_id]
        outcome = Outcome(record.output, None, None, record.model, None, reason, record.attempts, time.time())
        self.move(task_id, TaskState.INTERRUPTED, at, outcome)

    def record_usage(self, task_id: str, tokens: Tokens, cost_usd: float | None) -> None:
        record = self._tasks[task_id]
        record.spend.add(tokens, cost_usd)
        group = self._groups[record.group_id]
        group.spend.add(tokens, cost_usd)
        if cost_usd is not None:
            group.spent_usd += cost_usd

    def tally(self, group_id: str | None = None, owner: str | None = None) -> Mapping[TaskState, int]:
        if group_id is not None:
            return self._group_states[group_id]
        if owner is not None:
            return self._owner_states.get(owner) or dict.fromkeys(TaskState, 0)
        return self._per_state

    def newest(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> list[TaskRecord]:
        if group_id is not None:
            ids: Reversible[str] = self._groups[group_id].task_ids
        else:
            ids = self._tasks if owner is None else self._owned.get(owner, {})
        shown: list[TaskRecord] = []
        for task_id in reversed(ids):
            if len(shown) == limit:
                break
            record = self._tasks.get(task_id)  # a group's evicted tasks are skipped
            if record is None or (owner is not None and record.owner != owner):
                continue
            if state is None or record.state is state:
                shown.append(record)
        shown.reverse()
        return shown

    def finished(self) -> int:
        return len(self._finished)

    def evict(self, ended_before: float, keep: int) -> None:
        finished = self._finished
        while finished and (len(finished) > keep or finished[0][1] < ended_before):
            task_id, _ = finished.popleft()
            record = self._tasks.pop(task_id, None)
            if record is None:
                continue
            group_id = record.group_id
            self._recount(record, record.state, None)
            owned = self._owned[record.owner]
            del owned[task_id]
            if not owned:  # a principal that keeps no task costs nothing
                del self._owned[record.owner], self._owner_states[record.owner]
            if not any(self._group_states[group_id].values()):
                del self._groups[group_id], self._group_states[group_id]

    def attach(self, hooks: StoreHooks) -> None:
        """Nothing to ask: every task it holds runs in this process."""

    def request_cancel(self, task_id: str, reason: str) -> None:
        raise AssertionError(f"task {task_id} runs in this process: cancel it here")

    def cancel_asked(self, task_id: str) -> bool:
        return False  # every task it holds runs in this process, whose live part knows

    def elsewhere(self) -> tuple[int, int]:
        return 0, 0

    def remember_synthesis(self, key: str, task_ids: tuple[str, ...]) -> None:
        """Nothing to keep: the synthesizer remembers its own jobs for this process's lifetime."""

    async def recall_synthesis(self, key: str) -> tuple[str, ...] | None:
        return None

    async def flush(self) -> None:
        """Nothing to write: memory is all there is."""

    async def refresh(self, task_ids: Sequence[str]) -> None:
        """Nothing to read: memory is current."""

    async def refresh_group(self, group_id: str) -> None:
        """Nothing to read: memory is current."""

    async def listing(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None = None
    ) -> tuple[Mapping[TaskState, int], list[TaskRecord]]:
        tally = self.tally(group_id, owner)
        wanted = max(0, min(limit, sum(tally.values()) if state is None else tally[state]))
        return tally, self.newest(group_id, state, wanted, owner)

    def _recount(self, record: TaskRecord, old: TaskState, new: TaskState | None) -> None:
        """One task moved from ``old`` to ``new`` (None: evicted)."""
        tallies = (self._per_state, self._group_states[record.group_id], self._owner_states[record.owner])
        for tally in tallies:
            tally[old] -= 1
            if new is not None:
                tally[new] += 1
