"""The user's repository as edit tasks see it: found, checked, and snapshotted without being changed.

A snapshot is a commit of what the user sees now (committed, staged, unstaged and untracked files that
are not ignored), made with a temporary index so that the user's index, HEAD, branches and stash stay
as they are: ``GIT_INDEX_FILE=<temp> git add -A``, ``write-tree``, ``commit-tree -p HEAD``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import anyio

from ..core.errors import InvalidInput
from .git import GitFailed, git

# What a merge, rebase, cherry-pick or revert in progress leaves in the git directory.
_BUSY = {
    "MERGE_HEAD": "a merge",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase (or git am)",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
}


async def find_repository(directory: Path) -> Path:
    """The top of the git work tree that holds ``directory``.

    Raises:
        InvalidInput: it is in no git work tree (or in a bare repository).
    """
    try:
        inside = await git(directory, "rev-parse", "--is-inside-work-tree")
    except GitFailed:
        inside = None
    if inside is None or inside.line() != "true":
        raise InvalidInput(
            f"{directory} is not in a git work tree: edit tasks work on a git repository (git init and "
            "commit first), named by the task's cwd or the server's first root"
        )
    top = (await git(directory, "rev-parse", "--show-toplevel")).line()
    return Path(await anyio.Path(top).resolve())


async def check_quiet(repo: Path) -> None:
    """Refuse a repository in the middle of a merge, rebase, cherry-pick or revert.

    Raises:
        InvalidInput: one is in progress; the message names it.
    """
    for name, what in _BUSY.items():
        path = Path((await git(repo, "rev-parse", "--git-path", name)).line())
        if not path.is_absolute():
            path = repo / path
        if await anyio.Path(path).exists():
            raise InvalidInput(
                f"{repo} is in the middle of {what}: finish or abort it first (git status says how), then "
                "spawn the edit tasks again"
            )


def check_scope(scope: Sequence[str]) -> tuple[str, ...]:
    """The scope's globs, each relative to the repository and staying inside it.

    Raises:
        InvalidInput: a glob is absolute or climbs out with ``..``.
    """
    checked: list[str] = []
    for glob in scope:
        path = PurePosixPath(glob.replace("\\", "/"))
        if not glob.strip() or path.is_absolute() or ".." in path.parts or glob.startswith("~"):
            raise InvalidInput(
                f"scope {glob!r} leaves the repository: give globs relative to the repository's top, such as "
                "'src/auth/**' or 'docs/*.md'"
            )
        checked.append(str(path))
    return tuple(checked)


async def snapshot(repo: Path, message: str, parent: str | None = None) -> str:
    """A commit of the work tree as the user sees it now, whose parent is ``parent`` (default: HEAD, or
    none in a repository without commits). The user's index is copied, never written."""
    with tempfile.TemporaryDirectory(prefix="fanout-index-") as scratch:
        index = Path(scratch) / "index"
        own = Path((await git(repo, "rev-parse", "--git-path", "index")).line())
        own = own if own.is_absolute() else repo / own
        if await anyio.Path(own).exists():
            shutil.copyfile(own, index)  # a head start: git add then rehashes only what changed
        env = {"GIT_INDEX_FILE": str(index)}
        await git(repo, "add", "-A", env=env)
        tree = (await git(repo, "write-tree", env=env)).line()
    parents = ["-p", parent] if parent else await _head_parent(repo)
    return (await git(repo, "commit-tree", tree, *parents, "-m", message)).line()


async def tree_of(repo: Path, commit: str) -> str:
    return (await git(repo, "rev-parse", f"{commit}^{{tree}}")).line()


async def _head_parent(repo: Path) -> list[str]:
    head = await git(repo, "rev-parse", "--verify", "-q", "HEAD", ok=(0, 1))
    return ["-p", head.line()] if head.status == 0 else []
