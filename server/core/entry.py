"""The registry's live record of one task. Only ``registry.py`` creates or changes these.

An entry is also the ``TaskSink`` its backend reports to. Its state is written only by
``TaskRegistry._move``; everything else here records what the backend says or reads the entry out as a
frozen ``TaskSnapshot``. Large things (the planned request, the cancel scope, the partial-output chunks)
are dropped when the task ends, so a finished entry stays small.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..backends import Backend
from ..config.pricing import PriceTable
from ..intake.prepare import PlannedTask
from .models import (
    TaskError,
    TaskSnapshot,
    TaskSpec,
    Tokens,
    Usage,
)
from .state import ErrorKind, TaskState


@dataclass(slots=True)
class Spend:
    """Tokens and cost, added up call by call.

    The cost is None once the cost of any call added is unknown: a total that silently left a call out
    would look complete and be too low.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float | None = 0.0

    def add(self, tokens: Tokens | Spend, cost_usd: float | None) -> None:
        self.input_tokens += tokens.input_tokens
        self.output_tokens += tokens.output_tokens
        self.cache_write_tokens += tokens.cache_write_tokens
        self.cache_read_tokens += tokens.cache_read_tokens
        self.cost_usd = None if cost_usd is None or self.cost_usd is None else self.cost_usd + cost_usd

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cost_usd=self.cost_usd,
        )


@dataclass(slots=True, eq=False)
class Group:
    """The tasks of one spawn."""

    id: str
    task_ids: list[str]
    limiter: anyio.CapacityLimiter | None
    live: int = 0  #: tasks of the group not yet evicted
    #: tasks of the group not yet evicted, per state (kept by the registry, which moves and evicts them)
    per_state: dict[TaskState, int] = field(default_factory=lambda: dict.fromkeys(TaskState, 0))
    shared_bytes: int = 0  #: what its tasks share (shared context, file texts) until the last one ends
    budget_usd: float | None = None
    #: every call of every task the group ever had, evicted ones too: written only by ``add_usage``, so
    #: reading a group's totals costs the same for one task as for thousands
    spend: Spend = field(default_factory=Spend)
    spent_usd: float = 0.0  #: the known cost of every call of the group's tasks so far
    budget_stopped: bool = False  #: its budget was spent and its queued tasks ended (once: none can join)

    @property
    def unfinished(self) -> int:
        """Its tasks not yet ended (an unfinished task is never evicted)."""
        return self.per_state[TaskState.QUEUED] + self.per_state[TaskState.RUNNING]

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.spent_usd >= self.budget_usd

    def add_usage(self, tokens: Tokens, cost_usd: float | None) -> None:
        """One call of one of its tasks, as that task's entry recorded it."""
        self.spend.add(tokens, cost_usd)
        if cost_usd is not None:
            self.spent_usd += cost_usd


@dataclass(slots=True, eq=False)
class Entry:
    """One task as the registry tracks it."""

    id: str
    group: Group
    spec: TaskSpec
    backend: Backend | None  #: dropped when the task ends
    prices: PriceTable
    planned: PlannedTask | None  #: its request, prompt not yet written; dropped when the task ends
    held_bytes: int = 0  #: what ``planned`` holds of its own (the group's shared part is apart)
    scope: anyio.CancelScope | None = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    state: TaskState = TaskState.QUEUED
    chunks: list[str] | None = field(default_factory=list[str])
    output: str | None = None
    answer_in_repair: str | None = None  #: the answer a repair call is fixing; kept if the repair fails
    structured: Any = None
    stop_reason: str | None = None
    model: str | None = None
    error: TaskError | None = None
    note: str | None = None
    cancel_note: str | None = None
    retry_cause: ErrorKind | None = None  #: why the task is retrying, until an answer starts again
    attempts: int = 0
    started: float | None = None  #: monotonic, when it began running
    ended: float | None = None  #: monotonic
    finished_at: float | None = None  #: wall clock, for retention
    spend: Spend = field(default_factory=Spend)  #: every call of this task
    warm_gate: anyio.Event | None = None  #: wait for this before queueing for a slot
    opens: anyio.Event | None = None  #: set when this task's answer begins (its siblings may start)
    deps: tuple[Entry, ...] = ()  #: tasks that must complete before this one starts
    on_restart: Callable[[Entry], None] | None = None  #: told of each retry (the registry logs it)

    # --- TaskSink: what the backend reports -------------------------------------------------------

    @property
    def task_id(self) -> str:
        return self.id

    def response_started(self) -> None:
        self.retry_cause = None
        if self.opens is not None:
            self.opens.set()

    def append(self, text: str) -> None:
        if self.chunks is not None:
            self.chunks.append(text)

    def restart(self, note: str, cause: ErrorKind) -> None:
        if self.chunks is not None:
            self.chunks.clear()
        self.note = note
        self.retry_cause = cause
        self.attempts += 1
        if self.on_restart is not None:
            self.on_restart(self)

    def status(self, text: str) -> None:
        self.note = text

    def begin_repair(self, answer: str, note: str) -> None:
        """A second, last call to fix ``answer``, which broke its output schema."""
        if self.chunks is not None:
            self.chunks.clear()
        self.answer_in_repair = answer
        self.note = note
        self.attempts += 1

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        self.model = model
        cost = cost_usd
        if cost is None and tokens != Tokens():  # no tokens, no cost said: a call whose cost is unknown
            cost = self.prices.cost(model, tokens)
        self.spend.add(tokens, cost)
        self.group.add_usage(tokens, cost)

    # --- reading -----------------------------------------------------------------------------------

    @property
    def text(self) -> str | None:
        """The answer: complete once completed, partial before (and kept if the task failed)."""
        if self.output is not None:
            return self.output
        if self.answer_in_repair is not None:  # a whole answer beats the start of its repair
            return self.answer_in_repair
        return "".join(self.chunks) if self.chunks else None

    def usage(self) -> Usage:
        return self.spend.usage()

    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else time.monotonic()
        return round(end - self.started, 3)

    def snapshot(self) -> TaskSnapshot:
        spec = self.spec
        return TaskSnapshot(
            task_id=self.id,
            group_id=self.group.id,
            index=spec.index,
            label=spec.label,
            role=spec.role,
            state=self.state,
            backend=spec.backend,
            model=self.model or spec.model or f"{spec.backend}'s default",
            output=self.text,
            partial=self.state is not TaskState.COMPLETED,
            structured=self.structured,
            stop_reason=self.stop_reason,
            error=self.error,
            note=self.note,
            usage=self.usage(),
            attempts=self.attempts,
            elapsed_s=self.elapsed(),
            cancel_requested=self.cancel_note is not None and not self.state.terminal,
        )
