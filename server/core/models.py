"""The engine's data: what a caller asks for, the frozen spec of a task, and the snapshots handed out.

Three types describe a task (see ``records.py`` for the third, the record the task table keeps):

* ``TaskRequest`` / ``SpawnRequest``: what the caller asked for, validated at the border (in
  ``intake/requests.py``: the spawn contract of the MCP tool and of plan files).
* ``TaskSpec`` and ``SubagentRequest``: what the registry resolved from a request (model, limits,
  the prompt with file contents). Frozen.
* ``TaskSnapshot``: a frozen read of a task at one moment, safe to hand out.

The registry's other answers (``Listing``, ``GroupSummary``, ``CancelOutcome``, ``Statistics``) are here
too, frozen like the snapshots they carry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .state import ErrorKind, TaskState


class Usage(BaseModel):
    """Tokens as the provider reported them, and their cost (null when the model's price is unknown)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cost_usd=cost,
        )


class TaskError(BaseModel):
    """Why a task failed."""

    model_config = ConfigDict(frozen=True)

    kind: ErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts of one provider call, before pricing."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass(frozen=True, slots=True)
class SubagentRequest:
    """Everything a backend needs for one subagent call.

    ``system`` is the spawn's shared block: the same string object for every sibling, so that it is
    byte-identical and the provider's prompt cache can serve it.
    """

    model: str
    max_tokens: int
    system: str
    prompt: str
    cache_system: bool
    output_schema: Mapping[str, Any] | None = None  #: ask the provider for schema-constrained output
    follow_up: tuple[str, str] | None = None  #: (the previous answer, what to say about it): a repair turn
    tools: bool = False  #: offer the read-only workspace tools (the backend runs the tool loop)
    cwd: Path | None = None  #: where an agent CLI runs (a real directory inside the roots); None: its default
    edit: bool = (
        False  #: an edit task: it may change the files of ``cwd`` (its own worktree) and nothing else
    )


@dataclass(frozen=True, slots=True)
class SubagentResult:
    """What a backend returns when a subagent finished."""

    text: str
    model: str
    stop_reason: str | None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """The resolved, immutable description of one task (small: kept after the task finishes)."""

    index: int
    label: str
    role: str | None
    task: str
    model: str
    backend: str
    timeout_s: float
    files: tuple[str, ...]
    output_schema: Mapping[str, Any] | None = None
    depends_on: tuple[int, ...] = ()  #: positions in the spawn
    known_sources: frozenset[str] | None = None  #: the only task ids a structured answer may cite


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """A task's try failed and it tries again: what ``TaskRegistry.on_retry`` listeners are told."""

    task_id: str
    group_id: str
    label: str
    attempt: int  #: the try about to be made (2 for the first retry)
    cause: ErrorKind  #: what the task fails as if its time runs out first: rate_limited or api_error
    note: str  #: what failed and how long the task waits, for a person (also the task's note)


class TaskSnapshot(BaseModel):
    """A task as it was at one moment."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    group_id: str
    index: int
    label: str
    role: str | None
    state: TaskState
    backend: str
    model: str
    output: str | None = Field(
        description="The full answer once completed; the partial answer while running."
    )
    partial: bool = Field(description="True when output is incomplete because the task has not finished.")
    structured: Any = Field(default=None, description="The parsed answer, for a task with an output_schema.")
    stop_reason: str | None = None
    error: TaskError | None = None
    note: str | None = Field(default=None, description="Latest status line, e.g. a retry after a 429.")
    usage: Usage
    attempts: int
    elapsed_s: float | None = Field(description="Seconds since the task started running (until it ended).")
    cancel_requested: bool = False
    retry_of: str | None = Field(default=None, description="The task this one runs again (retry_tasks).")


class SpawnedTask(BaseModel):
    """One task of a spawn, as the spawn left it."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    label: str
    state: TaskState
    retry_of: str | None = None  #: the task it runs again, in a retry's spawn


class SpawnReceipt(BaseModel):
    """What ``spawn`` returns: the ids to collect later, and anything worth a second look."""

    model_config = ConfigDict(frozen=True)

    group_id: str
    tasks: list[SpawnedTask]
    warnings: list[str]


class RetryReceipt(SpawnReceipt):
    """What ``retry`` returns: the new spawn that runs the tasks again, and the named tasks it left."""

    skipped: dict[TaskState, list[str]]  #: ids not run again, by state: completed, queued or running


class Counts(BaseModel):
    """Tasks per state."""

    model_config = ConfigDict(frozen=True)

    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    interrupted: int = 0

    @property
    def ended(self) -> int:
        """Tasks in a terminal state."""
        return self.completed + self.failed + self.cancelled + self.interrupted

    @property
    def retryable(self) -> int:
        """Tasks that ended without an answer: what ``retry_tasks`` runs again."""
        return self.failed + self.cancelled + self.interrupted

    @property
    def total(self) -> int:
        return self.queued + self.running + self.ended

    @staticmethod
    def of(states: list[TaskState]) -> Counts:
        return Counts.of_tally(Counter(states))

    @staticmethod
    def of_tally(tally: Mapping[TaskState, int]) -> Counts:
        # each state by name: task_output counts at every call, and iterating the enum is the slow part
        return Counts(
            queued=tally.get(TaskState.QUEUED, 0),
            running=tally.get(TaskState.RUNNING, 0),
            completed=tally.get(TaskState.COMPLETED, 0),
            failed=tally.get(TaskState.FAILED, 0),
            cancelled=tally.get(TaskState.CANCELLED, 0),
            interrupted=tally.get(TaskState.INTERRUPTED, 0),
        )


# --- what the registry's readers get -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What ``cancel`` did: ids it cancelled, and the tasks that had already ended."""

    cancelled: list[str]
    already_finished: list[TaskSnapshot]


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """A spawn's totals: every task it started, evicted ones included (as the budget counts them)."""

    group_id: str
    tasks: int  #: how many tasks the spawn started
    usage: Usage
    budget_usd: float | None
    spent_usd: float


@dataclass(frozen=True, slots=True)
class Listing:
    """Some of the tasks that matched a listing, with the number and states of all of them."""

    tasks: list[TaskSnapshot]
    total: int
    counts: Counts


@dataclass(frozen=True, slots=True)
class Statistics:
    """How busy the registry is."""

    queued: int
    running: int
    finished: int
    capacity: int
    held_bytes: int = 0  #: what unfinished tasks hold (``max_queued_bytes`` bounds it)
