"""What an edit task's worktree gets besides the snapshot, before its agent starts: the ignored files
the user lists in ``.worktreeinclude`` (copied), the directories the configuration names in
``worktree_links`` (linked), and the configuration's setup commands (run in it).

``.worktreeinclude`` is Claude Code's convention: gitignore patterns at the repository's top; a file is
copied only if it matches one *and* git ignores it (a tracked or merely untracked file is in the
snapshot already). Nothing outside the repository is copied: a symlink is followed only to a file
inside it. A linked directory must be one the snapshot lacks (ignored), such as ``node_modules``.

None of this reaches a change set: the paths copied and linked, and those the setup commands changed,
are recorded (``EditRecord.kept_out``) and left out of every commit of the worktree. A directory that git
ignores with a trailing slash (``node_modules/``) would not ignore a link of that name, and an agent may
change ``.gitignore``: so they are left out by name, not by trusting the ignore rules.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from ..config.commands import CommandSpec
from ..config.settings import Settings
from ..core.errors import TaskFailure
from ..core.state import ErrorKind
from .checks import run_setup
from .git import GitFailed, git

logger = logging.getLogger(__name__)

INCLUDE_FILE = ".worktreeinclude"


@dataclass(frozen=True, slots=True)
class Environment:
    """What the configuration gives every edit task's worktree."""

    links: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    commands: Mapping[str, CommandSpec] = field(default_factory=dict[str, CommandSpec])

    @classmethod
    def of(cls, settings: Settings) -> Environment:
        return cls(settings.worktree_links, settings.worktree_setup, settings.commands)


@dataclass(frozen=True, slots=True)
class Furnishing:
    """What one worktree will get: files to copy and directories to link, by path in the repository."""

    copies: tuple[str, ...]
    links: tuple[str, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return (*self.copies, *self.links)


async def plan(repo: Path, environment: Environment) -> Furnishing:
    """The ignored files ``.worktreeinclude`` matches, and the configured links whose directory exists in
    the repository and is not tracked.

    Raises:
        TaskFailure: git could not say (a pattern it cannot read, say).
    """
    try:
        copies = await _included(repo)
        links: list[str] = []
        for link in environment.links:
            tracked = await git(repo, "ls-files", "-z", "--", f":(literal){link}")
            if await anyio.Path(repo / link).is_dir() and not tracked.stdout:
                links.append(link)
    except GitFailed as exc:
        raise TaskFailure(ErrorKind.COMMAND_FAILED, f"could not list {INCLUDE_FILE}'s files: {exc}") from None
    return Furnishing(tuple(copies), tuple(links))


async def furnish(
    repo: Path, worktree: Path, furnishing: Furnishing, environment: Environment, kept_out: list[str]
) -> None:
    """Copy and link what ``furnishing`` says into the worktree, then run the setup commands there; what
    they changed joins ``kept_out`` (also when one fails).

    Raises:
        TaskFailure: a file could not be copied or linked, or a setup command failed or could not start.
    """
    try:
        await anyio.to_thread.run_sync(_copy_and_link, repo, worktree, furnishing)
    except OSError as exc:
        raise TaskFailure(ErrorKind.COMMAND_FAILED, f"could not furnish the task's worktree: {exc}") from None
    if not environment.setup:
        return
    try:
        await run_setup(environment.commands, environment.setup, worktree)
    finally:
        with anyio.CancelScope(shield=True):
            kept_out.extend(path for path in await _changed(worktree) if path not in kept_out)


async def _included(repo: Path) -> list[str]:
    include = repo / INCLUDE_FILE
    if not await anyio.Path(include).is_file():
        return []
    matched = await git(repo, "ls-files", "-z", "--others", "--ignored", f"--exclude-from={include}")
    candidates = [path for path in matched.stdout.split("\0") if path]
    if not candidates:
        return []
    ignored = await git(
        repo, "check-ignore", "-z", "--stdin", stdin="\0".join(candidates).encode(), ok=(0, 1)
    )
    return [path for path in ignored.stdout.split("\0") if path]


def _copy_and_link(repo: Path, worktree: Path, furnishing: Furnishing) -> None:
    top = Path(os.path.realpath(repo))
    for path in furnishing.copies:
        source = Path(os.path.realpath(repo / path))  # a symlink is followed, only to a file inside
        target = worktree / path
        if not source.is_relative_to(top) or not source.is_file() or target.exists():
            logger.warning("not copied into the worktree: %s (outside the repository, or not a file)", path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for path in furnishing.links:
        target = worktree / path
        if target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(repo / path, target_is_directory=True)


async def _changed(worktree: Path) -> list[str]:
    """Paths git sees changed in the worktree (an untracked directory as one path)."""
    status = await git(worktree, "status", "--porcelain", "-z", "--untracked-files=normal")
    fields = iter(status.stdout.split("\0"))
    paths: list[str] = []
    for entry in fields:
        if not entry:
            continue
        paths.append(entry[3:].rstrip("/"))
        if entry[0] in "RC":
            next(fields, None)  # the old path of a rename in the index
    return paths
