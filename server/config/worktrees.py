"""Settings of edit tasks' worktrees: what each gets besides the snapshot (linked directories, setup
commands) and how much disk they may take. ``Settings`` (``settings.py``) holds them with the others.

A size is given in bytes, or with a unit: ``2G``, ``512M``, ``1.5GiB`` (K, M, G and T are powers of 1024).
A list is one comma-separated value on the command line and in the environment, a list in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .commands import PRESETS, PROMPT, CommandSpec
from .option import Option

GIB: Final = 1024**3
_UNITS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": GIB, "T": 1024**4}
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_size(value: Any) -> Any:
    """Bytes from ``2G``-like text; anything else as it is (pydantic then says what is wrong)."""
    if not isinstance(value, str):
        return value
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size: give bytes, or a number with K, M, G or T (e.g. 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def comma_separated(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class WorktreeSettings(BaseModel):
    """The worktree part of ``Settings``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worktree_links: tuple[str, ...] = ()
    worktree_disk_limit: Annotated[int, Field(ge=0)] = 20 * GIB
    worktree_min_free: Annotated[int, Field(ge=0)] = 2 * GIB

    @field_validator("worktree_links", mode="before")
    @classmethod
    def _links_listed(cls, value: Any) -> Any:
        return comma_separated(value)

    @field_validator("worktree_links")
    @classmethod
    def _links_inside(cls, links: tuple[str, ...]) -> tuple[str, ...]:
        for link in links:
            path = PurePosixPath(link)
            if path.is_absolute() or ".." in path.parts or ".git" in path.parts or str(path) == ".":
                raise ValueError(f"{link!r} is not a directory inside the repository (such as node_modules)")
        return tuple(str(PurePosixPath(link)) for link in links)

    @field_validator("worktree_disk_limit", "worktree_min_free", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value)


def check_commands(names: tuple[str, ...], commands: Mapping[str, CommandSpec]) -> tuple[str, ...]:
    """``names`` if each is a configured command that can run as a check (a setup or verify command: its
    argv as it is, no prompt, in the worktree).

    Raises:
        ValueError: one is not; the message lists those that are.
    """
    for name in names:
        spec = commands.get(name)
        if spec is None or name in PRESETS:
            listed = ", ".join(check_names(commands)) or "none: add [commands.NAME] tables to the config"
            raise ValueError(f"{name!r} is not a configured command (configured: {listed})")
        if any(PROMPT in arg for arg in spec.argv):
            raise ValueError(f"command {name!r} takes a prompt ({PROMPT} in its argv): it cannot be a check")
    return names


def check_names(commands: Mapping[str, CommandSpec]) -> list[str]:
    """The configured commands a setup or verify may name: the operator's own (not the agent presets)."""
    return sorted(name for name in commands if name not in PRESETS)


WORKTREE_OPTIONS: Final[Mapping[str, Option]] = {
    "worktree_links": Option(
        "--worktree-links",
        "FANOUT_WORKTREE_LINKS",
        "directories of the repository (comma-separated, e.g. node_modules,.venv) that an edit task's "
        "worktree links to instead of lacking them (they are ignored, so not in the snapshot); a link "
        "is never part of a change set (default: none)",
        metavar="DIRS",
    ),
    "worktree_setup": Option(
        "--worktree-setup",
        "FANOUT_WORKTREE_SETUP",
        "configured commands (comma-separated names of [commands.NAME] tables) run in order in each "
        "edit task's worktree before its agent starts; one that fails fails the task (default: none)",
        metavar="NAMES",
    ),
    "worktree_disk_limit": Option(
        "--worktree-disk-limit",
        "FANOUT_WORKTREE_DISK_LIMIT",
        "most disk the worktrees of edit tasks may take together (bytes, or e.g. 2G); a spawn whose "
        "worktrees would pass it is refused, with the numbers; 0: no limit (default: 20G)",
        metavar="SIZE",
    ),
    "worktree_min_free": Option(
        "--worktree-min-free",
        "FANOUT_WORKTREE_MIN_FREE",
        "free disk a spawn of edit tasks must leave where the worktrees are (bytes, or e.g. 2G); one "
        "that would leave less is refused, with the numbers (default: 2G)",
        metavar="SIZE",
    ),
}
