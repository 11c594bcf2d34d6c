"""What the tools return: pydantic models, so every tool publishes an output schema.

The structured content is the answer a model reads (Claude Code hands it the JSON, not the text), so
it holds everything the model needs, ``next`` included: what to call next, and why. It is shaped for a
model: ids first, states as plain strings, long outputs paged, and nothing said twice (an absent field
is null; a field that is null is left out).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from ..server import (
    Action,
    Conflict,
    Counts,
    MergedFinding,
    Missing,
    Source,
    TaskError,
    TaskState,
    Usage,
)
from ..server.changes.models import ChangeSet, ChangesOverview


def _is_none(value: object) -> bool:
    return value is None


def _omitted_if_none() -> Any:
    """A field's default that leaves it out of the structured content while it is null."""
    return Field(default=None, exclude_if=_is_none)


Next = Annotated[str, Field(description="What to call next, and why.")]


class SpawnedTaskView(BaseModel):
    task_id: str
    label: str
    state: TaskState


class SpawnResult(BaseModel):
    """Returned by spawn_parallel."""

    group_id: Annotated[
        str, Field(description="Pass to task_output, synthesize, list_tasks or cancel_tasks.")
    ]
    task_ids: list[str]
    tasks: list[SpawnedTaskView]
    warnings: Annotated[list[str], Field(description="Things worth a second look, e.g. tasks sharing files.")]
    next: Next


RetryOf = Annotated[str | None, Field(description="The task this one runs again (retry_tasks).")]


class TaskView(BaseModel):
    """One task in task_output: its state and (a page of) its output."""

    task_id: str
    group_id: str
    label: str
    state: TaskState
    retry_of: RetryOf = _omitted_if_none()
    output: Annotated[str | None, Field(description="The answer, or the part that fits this page.")] = (
        _omitted_if_none()
    )
    structured: Annotated[
        Any,
        Field(
            description="The parsed answer, for a task with an output_schema; only on a page that holds "
            "the whole output (page through output otherwise)."
        ),
    ] = _omitted_if_none()
    partial: Annotated[bool, Field(description="True while the task runs (or if it failed midway).")]
    truncated: Annotated[bool, Field(description="More output follows; call again with offset=next_offset.")]
    next_offset: int | None = _omitted_if_none()
    total_chars: int
    error: TaskError | None = _omitted_if_none()
    note: str | None = _omitted_if_none()
    stop_reason: str | None = _omitted_if_none()
    usage: Usage
    elapsed_s: float | None = _omitted_if_none()
    backend: str
    model: str
    changes: Annotated[
        ChangeSet | None,
        Field(description="An edit task's files (diffs: include='patch'; into your tree: apply_changes)."),
    ] = _omitted_if_none()


class GroupView(BaseModel):
    """A spawn's totals: every task of it, not only those named in the call (and tasks since evicted)."""

    group_id: str
    tasks: Annotated[int, Field(description="How many tasks the spawn started.")]
    usage: Annotated[
        Usage,
        Field(description="Every call of the spawn's tasks; cost_usd is null if any call's is unknown."),
    ]
    budget_usd: float | None = _omitted_if_none()
    spent_usd: Annotated[float, Field(description="What the group's calls cost so far (priced models).")]


class IdsByState(BaseModel):
    """Task ids per state, each list in spawn order."""

    queued: list[str] = []
    running: list[str] = []
    completed: list[str] = []
    failed: list[str] = []
    cancelled: list[str] = []
    interrupted: list[str] = []


class TaskOutputResult(BaseModel):
    """Returned by task_output: with include='output' the tasks, with include='status' their ids by state."""

    done: Annotated[
        bool, Field(description="Every named task has finished. If false, call task_output again.")
    ]
    counts: Counts
    tasks: Annotated[
        list[TaskView],
        Field(
            description="Each named task with a page of its output (include='output'; empty with 'status')."
        ),
    ] = []
    ids_by_state: Annotated[
        IdsByState | None,
        Field(description="The named tasks' ids by state (include='status' only)."),
    ] = _omitted_if_none()
    usage: Annotated[Usage, Field(description="Total over the named tasks.")]
    groups: Annotated[list[GroupView], Field(description="Totals and budget of the groups they belong to.")]
    waited_s: float
    next: Next


class TaskSummary(BaseModel):
    """One task in list_tasks (no output)."""

    task_id: str
    group_id: str
    label: str
    role: str | None = _omitted_if_none()
    state: TaskState
    retry_of: RetryOf = _omitted_if_none()
    output_chars: int
    error: TaskError | None = _omitted_if_none()
    note: str | None = _omitted_if_none()
    usage: Usage
    elapsed_s: float | None = _omitted_if_none()
    backend: str
    model: str


class ListResult(BaseModel):
    """Returned by list_tasks."""

    counts: Annotated[Counts, Field(description="Over every task that matched, shown or not.")]
    total: int
    tasks: Annotated[list[TaskSummary], Field(description="The newest `limit` of them, in spawn order.")]
    worktree_bytes: Annotated[
        dict[str, int] | None, Field(description="Disk the edit worktrees of each group shown take.")
    ] = _omitted_if_none()
    next: Next


class FinishedTask(BaseModel):
    task_id: str
    state: TaskState


class CancelResult(BaseModel):
    """Returned by cancel_tasks."""

    cancelled: Annotated[
        list[str], Field(description="Ids that were queued or running and are now cancelled.")
    ]
    already_finished: Annotated[
        list[FinishedTask], Field(description="Ids that had already ended; untouched.")
    ]
    counts: Counts
    next: Next


class RetriedTaskView(BaseModel):
    task_id: str
    retry_of: Annotated[str, Field(description="The id it runs again.")]
    label: str
    state: TaskState


class SkippedTasks(BaseModel):
    """Named tasks of one state that retry_tasks left as they are."""

    state: TaskState
    count: int
    task_ids: Annotated[list[str], Field(description="Their ids (the first 100).")]
    reason: Annotated[str, Field(description="Why, and what to do.")]


class RetryResult(BaseModel):
    """Returned by retry_tasks."""

    group_id: Annotated[str, Field(description="The new group that runs the tasks again.")]
    tasks: Annotated[
        list[RetriedTaskView], Field(description="The new tasks, each with the id it runs again.")
    ]
    skipped: Annotated[list[SkippedTasks], Field(description="Named tasks not run again, by state.")]
    warnings: list[str]
    next: Next


class SynthesisResult(BaseModel):
    """Returned by synthesize."""

    done: Annotated[bool, Field(description="False while the model synthesis still runs: call again.")]
    mode: Literal["llm", "merge"]
    summary: str
    findings: Annotated[
        list[MergedFinding],
        Field(description="Merged findings, most important first, each with its sources."),
    ]
    conflicts: Annotated[
        list[Conflict], Field(description="Where tasks disagree: every side, with its tasks.")
    ]
    actions: Annotated[list[Action], Field(description="What to do, in priority order, with sources.")]
    missing: Annotated[
        list[Missing], Field(description="Tasks with no answer in it (failed, cancelled, running).")
    ]
    sources: list[Source]
    changes: Annotated[
        ChangesOverview | None,
        Field(description="Edit tasks: shared files, the conflict matrix and an apply preview."),
    ] = _omitted_if_none()
    markdown: Annotated[
        str | None,
        Field(
            description="The merged answer as markdown, citing task ids: only when a source answered in "
            "free text, whose merged paragraphs are nowhere else (findings are in findings)."
        ),
    ] = _omitted_if_none()
    usage: Annotated[Usage, Field(description="What the synthesis call itself used.")]
    total_usage: Annotated[Usage, Field(description="The source tasks plus the synthesis.")]
    groups: Annotated[list[GroupView], Field(description="Totals and budget of the sources' groups.")] = []
    synthesis_task_id: str | None = _omitted_if_none()
    notes: list[str]
    next: Next


ErrorKind = Literal[
    "invalid_input", "not_found", "limit_reached", "backend_unavailable", "shutting_down", "internal"
]


class CallError(BaseModel):
    """Why a call did not do what it was asked."""

    kind: ErrorKind
    message: str


class ErrorResult(BaseModel):
    """What every tool returns (with isError) when it refused or failed a call."""

    error: CallError
    next: Next
