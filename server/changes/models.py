"""What the engine says about change sets: the answers the MCP tools hand on as they are."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FileStatus = Literal["added", "modified", "deleted", "renamed", "copied", "type_changed"]


class FileChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    status: FileStatus
    old_path: str | None = None  #: a renamed or copied file's former path
    added: int | None = Field(description="Lines added (null for a binary file).")
    removed: int | None = Field(description="Lines removed (null for a binary file).")
    in_scope: bool = Field(description="Whether the path matches the task's scope (true without a scope).")


class CheckResult(BaseModel):
    """One verify command's run in the task's worktree, after its change set was committed."""

    model_config = ConfigDict(frozen=True)

    name: str
    exit_code: int | None = Field(description="0: passed; null: it did not finish (out of time, not run).")
    output: str = Field(description="The end of its output (stdout and stderr).")


class ChangeSet(BaseModel):
    """An edit task's changes: its base, and each file it changed."""

    model_config = ConfigDict(frozen=True)

    base: str = Field(description="The snapshot commit of your tree the task started from.")
    ref: str
    status: str = Field(description="running, ended, applied or discarded.")
    changed_nothing: bool
    files: list[FileChange]
    outside_scope: list[str] = []
    verify: list[CheckResult] = []


class Conflict(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_ids: tuple[str, str]
    paths: list[str]


class PreviewStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    applies: bool
    conflicts: list[str] = []


class ChangesOverview(BaseModel):
    """Fan-in for edit tasks, with no model: overlaps, the conflict matrix and an apply preview."""

    model_config = ConfigDict(frozen=True)

    shared_files: dict[str, list[str]] = Field(
        description="Files touched by more than one task: path -> ids."
    )
    conflicts: list[Conflict] = Field(
        description="Every pair of tasks whose changes conflict, with the paths."
    )
    clean_pairs: int = Field(description="Pairs of tasks whose changes merge cleanly.")
    preview: list[PreviewStep] = Field(
        description="Applying each in order onto your tree as it is now; conflicts name the paths."
    )


class Skipped(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    why: str
    paths: list[str] = []


class ApplyOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    dry_run: bool
    apply_id: str | None = Field(description="Give it to apply_changes(undo=...) to reverse this apply.")
    applied: list[str]
    skipped: list[Skipped]


class Resolution(BaseModel):
    """The edit task started to resolve conflicting change sets."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    group_id: str
    conflicts: list[str] = Field(description="The files its worktree holds with conflict markers.")


class UndoOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    apply_id: str
    undone: bool
    changed_since: list[str] = Field(description="Files changed since the apply: undo refused for them.")
    reverse_patch: str | None = Field(description="When refused: the patch that would undo the apply.")
