"""Conflict resolution: one more edit task, whose worktree holds the conflicting change sets merged.

The sets are merged in git's object store, in the order given (``merge-tree --write-tree``, as the
conflict matrix does), conflicts and all: each conflicting file is written with git's markers
(``<<<<<<<``, ``=======``, ``>>>>>>>``, each side named by its task's ref). That merge is committed on
top of the tasks' heads and the new task's worktree starts from it, while its base stays the tasks'
base: its change set holds both tasks' work and the resolution, and is reviewed and applied like any
other. It runs on the first task's backend and model, with each task's answer and the conflicting
paths in its prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..backends import Backend
from ..config.settings import Settings
from ..core.errors import InvalidInput
from ..core.models import SubagentRequest, TaskSnapshot, TaskSpec
from ..intake.prepare import PlannedTask
from .changeset import head_of
from .editing import EditingBackend, EditTarget
from .environment import Environment
from .git import git
from .ledger import EditRecord, Ledger
from .matrix import merge

_SYSTEM = "You resolve merge conflicts between changes that subagents made in parallel to one repository."


async def merge_with_markers(records: Sequence[EditRecord]) -> tuple[str, list[str]]:
    """A commit of the records' change sets merged in order, conflict markers left in; the paths that
    conflict.

    Raises:
        InvalidInput: fewer than two, of different repositories or snapshots, or nothing conflicts.
    """
    check_resolvable(records)
    repo, first = Path(records[0].repo), records[0]
    current, ours, conflicts = head_of(first), first.ref, set[str]()
    for record in records[1:]:
        tree, paths = await merge(repo, ours, record.ref)
        conflicts |= set(paths)
        parents = ("-p", current, "-p", head_of(record))
        said = f"fanout-mcp: {record.task_id} merged, conflicts marked"
        current = ours = (await git(repo, "commit-tree", tree, *parents, "-m", said)).line()
    if not conflicts:
        ids = ", ".join(f'"{r.task_id}"' for r in records)
        raise InvalidInput(
            f"the changes of {ids.replace(chr(34), '')} do not conflict: apply_changes(task_ids=[{ids}]) "
            "applies them all, nothing to resolve"
        )
    return current, sorted(conflicts)


def check_resolvable(records: Sequence[EditRecord]) -> None:
    """Refuse fewer than two tasks, or tasks of different repositories or snapshots.

    Raises:
        InvalidInput: the message says which.
    """
    if len({r.task_id for r in records}) < 2:
        raise InvalidInput(
            "resolve needs two or more edit tasks whose changes conflict (synthesize shows the pairs)"
        )
    if len({(r.repo, r.base) for r in records}) > 1:
        raise InvalidInput(
            "these tasks started from different snapshots of your tree (or different repositories): "
            "resolve merges tasks of one spawn; apply one, then run the other again on the tree as it is"
        )


def plan_resolution(
    records: Sequence[EditRecord],
    answers: Sequence[TaskSnapshot],
    start: str,
    conflicts: Sequence[str],
    backend: Backend,
    settings: Settings,
    ledger: Ledger,
) -> PlannedTask:
    """The resolving edit task: on ``backend`` with the first task's model, in a worktree of ``start``
    (the merge with markers) whose base is the tasks' base, its scope theirs together."""
    first = answers[0]
    label = "resolve " + " + ".join(a.label for a in answers)
    scope = (
        () if any(not r.scope for r in records) else tuple(dict.fromkeys(g for r in records for g in r.scope))
    )
    # Its worktree gets the same environment as the tasks' (.worktreeinclude, links, setup commands).
    target = EditTarget(
        Path(records[0].repo), records[0].base, scope, start=start, environment=Environment.of(settings)
    )
    model = backend.model_for(first.model, settings.model)
    prompt = resolution_prompt(answers, conflicts)
    spec = TaskSpec(
        index=0,
        label=label[:120],
        role="conflict resolution",
        task=prompt,
        model=model,
        backend=backend.name,
        timeout_s=backend.traits.default_timeout_s or settings.task_timeout_s,
        files=(),
        output_schema=None,
        depends_on=(),
    )
    request = SubagentRequest(
        model=model, max_tokens=settings.max_tokens, system=_SYSTEM, prompt="", cache_system=False,
        output_schema=None,
    )  # fmt: skip
    return PlannedTask(spec, request, EditingBackend(backend, target, ledger, spec.label), prompt)


def resolution_prompt(answers: Sequence[TaskSnapshot], conflicts: Sequence[str]) -> str:
    """What the resolving task is told: the conflicting files, then each task's answer."""
    blocks = "\n\n".join(
        f'<answer task_id="{a.task_id}" label="{_attr(a.label)}" ref="refs/fanout/{a.group_id}/{a.task_id}">'
        f"\n{(a.output or '(no answer)').strip()}\n</answer>"
        for a in answers
    )
    return (
        f"{len(answers)} subagents changed this repository in parallel, each in a copy of its own, and "
        "their changes conflict. Your workspace holds all their changes merged; where they conflict, "
        "git's conflict markers (<<<<<<<, =======, >>>>>>>, each side named by its task's ref) are in "
        f"these files: {', '.join(conflicts)}.\n\nResolve every conflict so that the result does what "
        "each task set out to do, and leave no marker behind. Keep the rest of their changes as they "
        f"are. What each task said it did:\n\n{blocks}"
    )


def _attr(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")
