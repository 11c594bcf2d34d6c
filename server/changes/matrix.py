"""Conflicts found before anything lands: every pair of change sets merged in git's object store
(``merge-tree --write-tree``, no working tree touched), and a preview of applying them in order onto a
fresh snapshot of the user's tree, which may have moved since the tasks' base."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from .changeset import head_of
from .git import GitFailed, git
from .ledger import EditRecord
from .models import Conflict, PreviewStep
from .repository import snapshot


async def merge(repo: Path, ours: str, theirs: str) -> tuple[str, list[str]]:
    """The merged tree of two commits and the paths that conflict ([] for a clean merge)."""
    done = await git(
        repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs, ok=(0, 1)
    )
    lines = [line for line in done.stdout.split("\n") if line]
    if done.status == 0:
        return lines[0], []
    return lines[0], sorted(set(lines[1:]))


async def conflict_matrix(records: Sequence[EditRecord]) -> tuple[list[Conflict], int]:
    """Every pair of change sets of one repository that conflicts, and how many pairs merge cleanly."""
    conflicts: list[Conflict] = []
    clean = 0
    for first, second in itertools.combinations(records, 2):
        if first.repo != second.repo:
            continue
        _, paths = await merge(Path(first.repo), head_of(first), head_of(second))
        if paths:
            conflicts.append(Conflict(task_ids=(first.task_id, second.task_id), paths=paths))
        else:
            clean += 1
    return conflicts, clean


async def preview(records: Sequence[EditRecord]) -> list[PreviewStep]:
    """Each change set in order, merged onto a fresh snapshot of its repository's work tree (made with
    the base as its parent, so that the base is every merge's base) and onto the sets before it that
    merged cleanly."""
    steps: list[PreviewStep] = []
    current: dict[tuple[str, str], str] = {}
    for record in records:
        repo, key = Path(record.repo), (record.repo, record.base)
        if key not in current:
            current[key] = await snapshot(repo, "fanout-mcp: preview", parent=record.base)
        try:
            tree, paths = await merge(repo, current[key], head_of(record))
        except GitFailed as exc:
            steps.append(PreviewStep(task_id=record.task_id, applies=False, conflicts=[str(exc)]))
            continue
        if not paths:
            parents = ("-p", current[key], "-p", head_of(record))
            current[key] = (
                await git(repo, "commit-tree", tree, *parents, "-m", "fanout-mcp: preview")
            ).line()
        steps.append(PreviewStep(task_id=record.task_id, applies=not paths, conflicts=paths))
    return steps
