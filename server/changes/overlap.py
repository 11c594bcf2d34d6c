"""The independence check of a spawn's edit tasks: two whose ``scope`` globs can match the same path may
well change the same file, so the spawn warns, naming both and suggesting ``depends_on``.

Two scopes overlap when a glob of one is a glob of the other, when one names a subtree (``src/``,
``src/**``) that holds the other's fixed part, when a glob without wildcards is a path the other
matches, or when some path of the spawn's snapshot is matched by both. Pairs already ordered by
``depends_on`` (directly or through others) are left alone. The snapshot's paths are matched in a worker
thread, at most ``_MAX_PATHS`` of them, so a big tree never holds the event loop.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from ..intake.requests import TaskRequest, task_name
from .changeset import in_scope
from .editing import EditingBackend
from .git import git

if TYPE_CHECKING:
    from ..intake.prepare import PlannedTask

_MAX_PATHS: Final = 200_000  # of a snapshot, matched against the scopes (about a second in a worker)
_WILD: Final = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class _Scoped:
    index: int
    repo: Path
    base: str
    scope: tuple[str, ...]


async def overlap_warnings(tasks: Sequence[TaskRequest], planned: Sequence[PlannedTask]) -> list[str]:
    """A warning for each pair of edit tasks of one repository, not ordered by ``depends_on``, whose
    scopes can match the same path."""
    scoped = [
        _Scoped(i, p.backend.target.repo, p.backend.target.base, p.backend.target.scope)
        for i, p in enumerate(planned)
        if isinstance(p.backend, EditingBackend) and p.backend.target.scope
    ]
    if len(scoped) < 2:
        return []
    after = _ordered([p.spec.depends_on for p in planned])
    pairs = [
        (a, b)
        for n, a in enumerate(scoped)
        for b in scoped[n + 1 :]
        if a.repo == b.repo and b.index not in after[a.index] and a.index not in after[b.index]
    ]
    warnings: list[str] = []
    unsettled: list[tuple[_Scoped, _Scoped]] = []
    for a, b in pairs:
        why = _by_globs(a.scope, b.scope)
        if why is None:
            unsettled.append((a, b))
        else:
            warnings.append(_warning(tasks, a, b, why))
    for (a, b), path in zip(unsettled, await _shared_paths(unsettled), strict=True):
        if path is not None:
            warnings.append(_warning(tasks, a, b, f"both scopes match {path!r}"))
    return warnings


def _warning(tasks: Sequence[TaskRequest], a: _Scoped, b: _Scoped, why: str) -> str:
    first, second = task_name(tasks[a.index], a.index), task_name(tasks[b.index], b.index)
    return (
        f"edit tasks {first} and {second} may change the same files ({why}): in parallel their changes "
        f"may conflict. Narrow their scopes, or give {second} depends_on [{first}] to run them in order."
    )


def _by_globs(ours: Sequence[str], theirs: Sequence[str]) -> str | None:
    """Why two scopes overlap, from the globs alone; None when only the tree can say."""
    for a in ours:
        for b in theirs:
            if a.rstrip("/") == b.rstrip("/"):
                return f"both have {a!r}"
            for one, other in ((a, b), (b, a)):
                if not _WILD.search(one) and in_scope(one, [other]):
                    return f"{one!r} is in {other!r}"
                subtree = _subtree(one)
                if subtree is not None and (_fixed(other) + "/").startswith(subtree + "/"):
                    return f"{other!r} is under {one!r}"
    return None


def _subtree(glob: str) -> str | None:
    """The directory a glob names all of (``dir``, as ``in_scope`` reads a glob without wildcards, and
    ``dir/**``, ``dir/*`` with ``*`` crossing directories), else None."""
    for tail in ("/**", "/*", ""):
        head = glob.removesuffix(tail) if tail else glob
        if glob.endswith(tail) and not _WILD.search(head):
            return head
    return None


def _fixed(glob: str) -> str:
    """The part of a glob before its first wildcard, up to the last whole directory."""
    match = _WILD.search(glob)
    return glob if match is None else glob[: match.start()].rpartition("/")[0]


async def _shared_paths(pairs: Sequence[tuple[_Scoped, _Scoped]]) -> list[str | None]:
    """For each pair, a path of its snapshot that both scopes match (None: none found)."""
    trees: dict[tuple[Path, str], list[str]] = {}
    for a, _ in pairs:
        if (a.repo, a.base) not in trees:
            listed = await git(a.repo, "ls-tree", "-r", "-z", "--name-only", a.base)
            trees[a.repo, a.base] = listed.stdout.split("\0", _MAX_PATHS)[:_MAX_PATHS]
    if not pairs:
        return []
    return await anyio.to_thread.run_sync(_match_pairs, pairs, trees, abandon_on_cancel=True)


def _match_pairs(
    pairs: Sequence[tuple[_Scoped, _Scoped]], trees: dict[tuple[Path, str], list[str]]
) -> list[str | None]:
    found: list[str | None] = []
    for a, b in pairs:
        ours, theirs = _pattern(a.scope), _pattern(b.scope)
        paths = trees[a.repo, a.base]
        found.append(next((p for p in paths if p and ours.match(p) and theirs.match(p)), None))
    return found


def _pattern(scope: Sequence[str]) -> re.Pattern[str]:
    """One regular expression for ``in_scope``: a glob matches a path (``*`` crossing directories) or
    names a directory above it."""
    parts = [fnmatch.translate(glob) for glob in scope]
    parts += [re.escape(glob.rstrip("/")) + r"/.*\Z" for glob in scope]
    return re.compile("|".join(f"(?s:{part})" for part in parts))


def _ordered(depends_on: Sequence[tuple[int, ...]]) -> list[set[int]]:
    """For each task, every task it waits for, directly or through others."""
    before: list[set[int]] = [set() for _ in depends_on]

    def visit(node: int) -> set[int]:
        if not before[node]:
            for dep in depends_on[node]:
                before[node] |= {dep} | visit(dep)
        return before[node]

    for node in range(len(depends_on)):
        visit(node)
    return before
