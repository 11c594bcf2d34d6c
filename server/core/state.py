"""Task states, the one transition table, and the error kinds a failed task can carry.

Pure data: nothing here imports anyio or the rest of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class TaskState(StrEnum):
    """Where a task is in its life. Terminal states are absorbing."""

    QUEUED = "queued"  #: accepted; waiting for a concurrency slot (or for a cache-warming sibling)
    RUNNING = "running"  #: holds a slot; the backend call (with its retries) is in progress
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: its process ended (a crash, a kill) while it was queued or running: it keeps its partial output, its
    #: note says why, and ``retry_tasks`` runs it again. A store that outlives the process moves it there.
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def retryable(self) -> bool:
        """Ended without an answer: ``retry_tasks`` runs it again."""
        return self in RETRYABLE_STATES


TERMINAL_STATES: Final = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED, TaskState.INTERRUPTED}
)

#: The ends a task may be run again from (``retry_tasks``): every end but a completed one.
RETRYABLE_STATES: Final = TERMINAL_STATES - {TaskState.COMPLETED}

TRANSITIONS: Final[Mapping[TaskState, frozenset[TaskState]]] = {
    # QUEUED -> FAILED: a task whose dependency failed never starts.
    TaskState.QUEUED: frozenset(
        {TaskState.RUNNING, TaskState.CANCELLED, TaskState.FAILED, TaskState.INTERRUPTED}
    ),
    TaskState.RUNNING: frozenset(
        {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED, TaskState.INTERRUPTED}
    ),
    TaskState.COMPLETED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
    TaskState.INTERRUPTED: frozenset(),
}


def can_move(source: TaskState, target: TaskState) -> bool:
    """Whether the transition table allows ``source -> target``."""
    return target in TRANSITIONS[source]


class ErrorKind(StrEnum):
    """Why a task failed; stable strings the calling model can branch on."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    API_ERROR = "api_error"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    INVALID_INPUT = "invalid_input"
    COMMAND_FAILED = "command_failed"  #: an agent CLI exited with an error (its stderr tail is said)
    INVALID_OUTPUT = "invalid_output"  #: the answer broke its output schema, also after one repair
    DEPENDENCY_FAILED = "dependency_failed"  #: a task it depends on failed or was cancelled
    BUDGET_EXCEEDED = "budget_exceeded"  #: (on a cancelled task) its spawn's budget_usd was spent first
    INTERNAL = "internal"
