"""Edit tasks at the call: which tasks edit, whether their backends can, which repository each works on,
and the spawn's snapshot of each repository (one per repository, shared by its tasks).

Everything a caller can get wrong is refused here, before any task exists and with nothing written:
a backend that cannot edit, a directory in no git work tree, a merge or rebase in progress, a scope
that leaves the repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends import Backend
from ..config.settings import Settings
from ..config.worktrees import check_commands
from ..core.errors import InvalidInput
from ..intake.requests import SpawnRequest, task_name
from .disk import check_room
from .editing import EditingBackend, EditTarget, state_dir
from .environment import Environment
from .ledger import Ledger
from .repository import check_quiet, check_scope, find_repository, snapshot

if TYPE_CHECKING:
    from ..intake.prepare import PlannedTask


def edit_flags(request: SpawnRequest) -> list[bool]:
    """Whether each task is an edit task: its own ``edit``, else the spawn's."""
    return [task.edit if task.edit is not None else request.edit for task in request.tasks]


def check_edit_backends(request: SpawnRequest, backends: Sequence[Backend]) -> None:
    """Refuse an edit task on a backend that cannot change files (sampling, batch), and a scope on a
    task that does not edit."""
    flags = edit_flags(request)
    for index, (task, edits, backend) in enumerate(zip(request.tasks, flags, backends, strict=True)):
        name = task_name(task, index)
        if edits and not backend.traits.edits:
            raise InvalidInput(
                f"task {index + 1} ({name}) is an edit task, but backend {backend.name!r} cannot "
                "change files: give it backend 'anthropic', 'claude', 'codex' or a configured command, "
                "or leave edit out"
            )
        if task.scope and not edits:
            raise InvalidInput(f"task {index + 1} ({name}) gives a scope but does not edit: set edit true")


async def with_edits(
    request: SpawnRequest, planned: list[PlannedTask], cwds: Sequence[Path | None], settings: Settings
) -> list[PlannedTask]:
    """The planned tasks, each edit task's backend wrapped to run in a worktree of the spawn's snapshot
    of its repository (the one holding its cwd, else the first root)."""
    flags = edit_flags(request)
    check_verify(request, flags, settings)
    if not any(flags):
        return planned
    ledger = Ledger(state_dir(settings))
    environment = Environment.of(settings)
    bases: dict[Path, str] = {}
    wrapped: list[PlannedTask] = []
    targets: list[tuple[Path, str]] = []
    for index, (task, plan, edits, cwd) in enumerate(zip(request.tasks, planned, flags, cwds, strict=True)):
        if not edits:
            wrapped.append(plan)
            continue
        scope = check_scope(task.scope)
        repo = await _repository(cwd, settings, f"task {index + 1} ({task_name(task, index)})")
        if repo not in bases:
            await check_quiet(repo)
            bases[repo] = await snapshot(repo, "fanout-mcp: snapshot of the work tree")
        target = EditTarget(repo, bases[repo], scope, verify=tuple(task.verify), environment=environment)
        wrapped.append(replace(plan, backend=EditingBackend(plan.backend, target, ledger, plan.spec.label)))
        targets.append((repo, target.base))
    await check_room(ledger.worktrees, targets, settings)
    return wrapped


def check_verify(request: SpawnRequest, flags: Sequence[bool], settings: Settings) -> None:
    """Refuse a verify on a task that does not edit, and one that names no configured command."""
    for index, (task, edits) in enumerate(zip(request.tasks, flags, strict=True)):
        if task.verify and not edits:
            raise InvalidInput(f"task {index + 1} ({task_name(task, index)}) gives verify but does not edit")
        try:
            check_commands(tuple(task.verify), settings.commands)
        except ValueError as exc:
            raise InvalidInput(f"task {index + 1} ({task_name(task, index)}): verify {exc}") from None


async def _repository(cwd: Path | None, settings: Settings, where: str) -> Path:
    directory = cwd or (settings.roots[0] if settings.roots else None)
    if directory is None:
        raise InvalidInput(
            f"{where} is an edit task, and there is no directory to find its repository in: give it a cwd "
            "inside the repository, or start the server with --root at the repository"
        )
    try:
        return await find_repository(directory)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None
