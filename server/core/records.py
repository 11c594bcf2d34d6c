"""A task's record and its spawn's: plain data that serialises, with no live object inside.

A store keeps them (``store.py``). What an unfinished task holds besides its record (its request, cancel
scope, backend, gates and progress) is a ``Live`` (``live.py``), kept beside the record, never in it.
``to_json`` and ``from_json`` are how a store that writes records out reads them back.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from ..intake.requests import SpawnRequest
from .models import TaskError, TaskSnapshot, TaskSpec, Tokens, Usage
from .state import TaskState

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from .live import Live


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


@dataclass(slots=True)
class GroupRecord:
    """The tasks of one spawn, and what they spent together."""

    id: str
    task_ids: list[str]
    owner: str  #: the principal that spawned it (``callers.py``); every task of the group has it too
    #: the spawn as it was asked for (file names, not their texts, which a re-run reads again): what
    #: ``retry`` runs again. None for a spawn the engine planned itself (a synthesis). Never changes.
    request: SpawnRequest | None = None
    budget_usd: float | None = None
    shared_bytes: int = 0  #: what its tasks share (shared context, file texts) until the last one ends
    #: every call of every task the group ever had, evicted ones too, so reading a group's totals costs
    #: the same for one task as for thousands
    spend: Spend = field(default_factory=Spend)
    spent_usd: float = 0.0  #: the known cost of every call of the group's tasks so far

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.spent_usd >= self.budget_usd


@dataclass(slots=True)
class TaskRecord:
    """One task as the store keeps it. Which code writes each field: see the package's docstring."""

    id: str
    group_id: str
    spec: TaskSpec
    owner: str  #: the principal that spawned it: only it (and an operator) sees the task
    #: the ids of the tasks whose answers it waits for: of its own spawn, and for a re-run the tasks
    #: outside it that it keeps depending on (completed or unfinished ones the retry did not run again)
    depends_on: tuple[str, ...] = ()
    retry_of: str | None = None  #: the task this one runs again (``retry``)
    state: TaskState = TaskState.QUEUED
    output: str | None = None  #: the answer, once ended (a running task's partial one is its progress's)
    structured: Any = None
    stop_reason: str | None = None
    model: str | None = None
    error: TaskError | None = None
    note: str | None = None
    attempts: int = 0
    # Monotonic, for the elapsed time: a store that outlives the process keeps the elapsed time instead.
    started: float | None = None
    ended: float | None = None
    finished_at: float | None = None  #: wall clock, for retention
    spend: Spend = field(default_factory=Spend)  #: every call of this task

    def usage(self) -> Usage:
        return self.spend.usage()

    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else time.monotonic()
        return round(end - self.started, 3)

    def snapshot(self, live: Live | None = None, cancel_asked: bool = False) -> TaskSnapshot:
        """The task as it is now: this record, and while it is unfinished what its ``live`` part says
        (or, running elsewhere, whether a cancel of it was ``cancel_asked``)."""
        spec = self.spec
        progress = live.progress if live is not None else None
        if progress is None:
            output, note, attempts, model = self.output, self.note, self.attempts, self.model
        else:
            output, note, attempts, model = progress.text, progress.note, progress.attempts, progress.model
        return TaskSnapshot(
            task_id=self.id,
            group_id=self.group_id,
            index=spec.index,
            label=spec.label,
            role=spec.role,
            state=self.state,
            backend=spec.backend,
            model=model or spec.model or f"{spec.backend}'s default",
            output=output,
            partial=self.state is not TaskState.COMPLETED,
            structured=self.structured,
            stop_reason=self.stop_reason,
            error=self.error,
            note=note,
            usage=self.usage(),
            attempts=attempts,
            elapsed_s=self.elapsed(),
            cancel_requested=(live is not None and live.cancel_note is not None) or cancel_asked,
            retry_of=self.retry_of,
        )


def new_id(prefix: str) -> str:
    """A fresh id of a task (``t``) or group (``g``): unguessable, minted by the server only."""
    return f"{prefix}-{secrets.token_urlsafe(12)}"


@cache
def _task_adapter() -> TypeAdapter[TaskRecord]:
    from pydantic import TypeAdapter  # built on first use: a server with --store memory never needs it

    return TypeAdapter(TaskRecord)


@cache
def _group_adapter() -> TypeAdapter[GroupRecord]:
    from pydantic import TypeAdapter

    return TypeAdapter(GroupRecord)


def to_json(record: TaskRecord | GroupRecord) -> bytes:
    """The record as JSON, complete: ``from_json`` (``group_from_json``) gives back an equal record."""
    if isinstance(record, GroupRecord):
        return _group_adapter().dump_json(record)
    return _task_adapter().dump_json(record)


def from_json(data: bytes | str) -> TaskRecord:
    return _task_adapter().validate_json(data)


def group_from_json(data: bytes | str) -> GroupRecord:
    return _group_adapter().validate_json(data)
