"""What a caller asks for: a spawn of tasks, validated at the border.

This is the one spawn contract. ``spawn_parallel``'s parameters are these fields (a test pins their
names, defaults and descriptions to the tool's), and a plan file is a ``SpawnRequest`` plus its
synthesis (``app/plan.py``). The field descriptions are written for the calling model: they are the
tool's input schema. What the engine resolves from a request is in ``core/models.py`` (``TaskSpec``,
``SubagentRequest``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Bounds that hold whatever the operator configures; configurable limits are checked by intake.
_MAX_TOKENS_CEILING = 128_000
_TIMEOUT_CEILING_S = 90_000.0  # a batch may take 24 h


class TaskRequest(BaseModel):
    """One independent piece of work for one subagent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Annotated[
        str,
        Field(
            min_length=1,
            description="What this subagent must do, complete on its own: it sees only this, "
            "shared_context and its files.",
        ),
    ]
    role: Annotated[
        str | None,
        Field(
            max_length=200,
            description="Specialist role, e.g. 'security reviewer'.",
        ),
    ] = None
    context: Annotated[
        str | None,
        Field(description="Background only this task needs."),
    ] = None
    files: Annotated[
        list[str],
        Field(
            max_length=200,
            description="Text files the server puts in the prompt (inside its roots).",
        ),
    ] = []
    output_format: Annotated[
        str | None,
        Field(
            description="The answer's shape, e.g. 'markdown list: severity, file:line, fix'; the same for "
            "all tasks."
        ),
    ] = None
    focus_areas: Annotated[
        list[str],
        Field(max_length=50, description="Priorities, most important first."),
    ] = []
    label: Annotated[
        str | None,
        Field(max_length=120, description="Its name in results."),
    ] = None
    model: Annotated[
        str | None,
        Field(min_length=1, max_length=200, description="Model id (default: the server's)."),
    ] = None
    max_tokens: Annotated[
        int | None,
        Field(ge=1, le=_MAX_TOKENS_CEILING, description="Cap on the answer's tokens."),
    ] = None
    timeout_s: Annotated[
        float | None,
        Field(
            gt=0,
            le=_TIMEOUT_CEILING_S,
            description="Seconds it may run once started (default: the server's).",
        ),
    ] = None
    output_schema: Annotated[
        dict[str, Any] | str | None,
        Field(
            description="A JSON Schema object, or 'findings' (synthesize merges those without a model): "
            "the answer is checked and returned parsed as structured."
        ),
    ] = None
    tools: Annotated[
        list[Literal["read"]] | None,
        Field(
            max_length=1,
            description="['read']: an 'anthropic' subagent may list, read and search the roots itself.",
        ),
    ] = None
    backend: Annotated[
        str | None,
        Field(
            max_length=100,
            description="'anthropic': the API; 'batch': half price, within 24 h; 'sampling': your client's "
            "model; others: agent CLIs the server runs. Default: the spawn's.",
        ),
    ] = None
    cwd: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=4096,
            description="Working directory of an agent CLI task, inside the roots.",
        ),
    ] = None
    edit: Annotated[
        bool | None,
        Field(
            description="True: it changes files, in its own git worktree of your tree; apply_changes "
            "brings them in.",
        ),
    ] = None
    scope: Annotated[
        list[str],
        Field(
            max_length=100,
            description="Globs (from the repository's root) of the files it should change.",
        ),
    ] = []
    verify: Annotated[
        list[str],
        Field(max_length=20, description="Configured commands (tests) run in its worktree after it."),
    ] = []
    depends_on: Annotated[
        list[str | int],
        Field(
            max_length=100,
            description="Labels or indexes of tasks of this spawn to complete first; their answers join its "
            "context.",
        ),
    ] = []

    @field_validator("task")
    @classmethod
    def _says_something(cls, task: str) -> str:
        if not task.strip():
            raise ValueError("task is blank: say what this subagent must do")
        return task


def default_label(index: int) -> str:
    """The label of the task at ``index`` that gives none."""
    return f"task {index + 1}"


def task_name(task: TaskRequest, index: int) -> str:
    """How a message names the task at ``index``: its label, else its position."""
    return repr(task.label) if task.label else f"#{index + 1}"


# The spawn's own fields, each declared once: ``SpawnRequest`` and ``spawn_parallel`` both use these.
# The tool bounds some more tightly at its border (its schema tells the calling model the bound); the
# engine checks the same bounds with its own messages (``prepare``), for plan files too.
Tasks = Annotated[list[TaskRequest], Field(description="The independent tasks, one subagent each.")]
SharedContext = Annotated[
    str | None, Field(description="What every task needs (goal, conventions); sent once, cached.")
]
MaxConcurrency = Annotated[int | None, Field(description="Run at most this many of these tasks at once.")]
SpawnOutputSchema = Annotated[
    dict[str, Any] | str | None, Field(description="For tasks without their own (see tasks).")
]
BudgetUsd = Annotated[
    float | None, Field(description="Start no more of these tasks once they cost this many dollars.")
]
SpawnBackend = Annotated[str | None, Field(description="For tasks without their own (see tasks).")]
SpawnTools = Annotated[list[Literal["read"]], Field(description="For tasks without their own (see tasks).")]
SpawnEdit = Annotated[bool, Field(description="For tasks without their own (see tasks).")]


class SpawnRequest(BaseModel):
    """A fan-out: tasks that run in parallel, plus what they share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: Tasks
    shared_context: SharedContext = None
    max_concurrency: MaxConcurrency = None
    output_schema: SpawnOutputSchema = None
    budget_usd: BudgetUsd = None
    backend: SpawnBackend = None
    tools: SpawnTools = []
    edit: SpawnEdit = False
