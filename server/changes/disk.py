"""How much disk edit tasks' worktrees take, and whether a spawn's new ones would fit.

A spawn of edit tasks is refused at the call when its worktrees would pass ``worktree_disk_limit`` or
leave less than ``worktree_min_free`` free where they live. Its need is estimated before any worktree
exists: the tracked bytes of its snapshot (``git ls-tree -r -l``), once per edit task; what the
worktrees already there take is measured. A measure walks the directories (in a worker thread, never
on the event loop), counting the blocks files take, links not followed and hard links once.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import anyio

from ..config.settings import Settings
from ..core.errors import InvalidInput
from .git import git

#: how long a group's measure is reused by list_tasks: a walk of big worktrees is not free
FRESH_S: Final = 30.0


async def check_room(worktrees: Path, bases: Sequence[tuple[Path, str]], settings: Settings) -> None:
    """Refuse new worktrees, one per ``(repository, snapshot)``, that would not fit.

    Raises:
        InvalidInput: they would pass the limit, or leave too little free; the message has the numbers.
    """
    needed = 0
    for (repo, base), count in Counter(bases).items():
        needed += await tracked_bytes(repo, base) * count
    used, free = await anyio.to_thread.run_sync(_used_and_free, worktrees)
    limit, margin = settings.worktree_disk_limit, settings.worktree_min_free
    numbers = f"needed about {_size(needed)} for {len(bases)} worktree(s), used {_size(used)}"
    if limit and used + needed > limit:
        raise InvalidInput(
            f"edit tasks' worktrees would pass the disk limit: {numbers}, limit {_size(limit)} "
            f"(--worktree-disk-limit), free {_size(free)}. Apply or discard finished edit tasks "
            "(apply_changes, discard true) to free their worktrees, or spawn fewer edit tasks"
        )
    if free - needed < margin:
        raise InvalidInput(
            f"edit tasks' worktrees would leave too little free disk: {numbers}, free {_size(free)}, "
            f"to keep free {_size(margin)} (--worktree-min-free). Free some disk, or spawn fewer edit tasks"
        )


async def tracked_bytes(repo: Path, commit: str) -> int:
    """The bytes of every file in ``commit``'s tree: what a checkout of it writes."""
    listing = await git(repo, "ls-tree", "-r", "-l", "-z", commit)
    total = 0
    for entry in listing.stdout.split("\0"):
        fields = entry.split(None, 4)
        if len(fields) == 5 and fields[3].isdigit():  # submodules and links to trees have "-"
            total += int(fields[3])
    return total


class DiskMeter:
    """The disk use of each group's worktrees, measured off the event loop and kept for ``FRESH_S``."""

    def __init__(self, worktrees: Path) -> None:
        self._worktrees = worktrees
        self._measured: dict[str, tuple[float, int]] = {}

    async def groups(self, group_ids: Iterable[str]) -> dict[str, int]:
        """Bytes on disk of each group's worktrees, for the groups that have any."""
        wanted, now = list(dict.fromkeys(group_ids)), time.monotonic()
        stale = [g for g in wanted if g not in self._measured or now - self._measured[g][0] >= FRESH_S]
        if stale:
            sizes = await anyio.to_thread.run_sync(self._measure, stale)
            self._measured.update((group, (now, size)) for group, size in sizes.items())
        return {group: self._measured[group][1] for group in wanted if self._measured[group][1]}

    def _measure(self, group_ids: list[str]) -> dict[str, int]:
        return {group: sum(map(disk_use, self._worktrees.glob(f"*/{group}"))) for group in group_ids}


def disk_use(top: Path) -> int:
    """The bytes the files under ``top`` take on disk (links not followed, a hard link counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [top]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue  # removed meanwhile, or unreadable
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
    return total


def _used_and_free(worktrees: Path) -> tuple[int, int]:
    existing = worktrees
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return disk_use(worktrees), shutil.disk_usage(existing).free


def _size(count: int) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit} ({count:,} bytes)"
    return f"{count:,} bytes"
