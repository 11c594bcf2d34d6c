"""An edit task's change set read back from git: per file, its status, lines added and removed, and
whether it is inside the task's scope; and the patch itself."""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from .git import git, git_bytes
from .ledger import EditRecord
from .models import ChangeSet, FileChange, FileStatus

_STATUS: Final[dict[str, FileStatus]] = {
    "A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "type_changed",
}  # fmt: skip


def head_of(record: EditRecord) -> str:
    """The commit of the task's change set: its ref's (the base while it runs)."""
    return record.head or record.base


async def describe(record: EditRecord) -> ChangeSet:
    files = await _files(Path(record.repo), record.base, head_of(record), record.scope)
    outside = [f.path for f in files if not f.in_scope]
    return ChangeSet(base=record.base, ref=record.ref, status=record.status, changed_nothing=not files,
                     files=list(files), outside_scope=outside, verify=record.verify)  # fmt: skip


# What two commits differ by never changes: each pair is read from git once (task_output shows an edit
# task's changes on every call, synthesize and apply read them again), the newest _KEPT pairs kept.
_KEPT: Final = 512
_read: OrderedDict[tuple[Path, str, str, tuple[str, ...]], list[FileChange]] = OrderedDict()


async def _files(repo: Path, base: str, head: str, scope: tuple[str, ...]) -> list[FileChange]:
    key = (repo, base, head, scope)
    if (known := _read.get(key)) is not None:
        _read.move_to_end(key)
        return known
    names = (await git(repo, "diff", "--name-status", "-M", "-z", base, head)).stdout.split("\0")
    counts = (await git(repo, "diff", "--numstat", "-M", "-z", base, head)).stdout.split("\0")
    lines = _numstat(counts)
    files: list[FileChange] = []
    fields = iter(name for name in names if name)
    for code in fields:
        status = _STATUS.get(code[0], "modified")
        old = next(fields) if code[0] in "RC" else None
        path = next(fields)
        added, removed = lines.get(path, (None, None))
        files.append(FileChange(path=path, status=status, old_path=old, added=added, removed=removed,
                                in_scope=in_scope(path, scope)))  # fmt: skip
    _read[key] = files
    if len(_read) > _KEPT:
        _read.popitem(last=False)
    return files


async def patch_of(record: EditRecord, reverse: bool = False) -> bytes:
    """The task's change set as a binary-safe patch (``reverse``: the patch that takes it back out)."""
    ends = (head_of(record), record.base) if reverse else (record.base, head_of(record))
    return await git_bytes(Path(record.repo), "diff", "--binary", "--full-index", "-M", *ends)


def in_scope(path: str, scope: Sequence[str]) -> bool:
    """Whether ``path`` matches a glob of ``scope`` (``*`` crosses directories; a directory names all
    below it). Every path is in an empty scope."""
    if not scope:
        return True
    return any(fnmatch.fnmatchcase(path, glob) or path.startswith(glob.rstrip("/") + "/") for glob in scope)


def _numstat(fields: list[str]) -> dict[str, tuple[int | None, int | None]]:
    """numstat -z: ``added\tremoved\tpath`` or, for a rename, ``added\tremoved\t`` then old and new."""
    counts: dict[str, tuple[int | None, int | None]] = {}
    items = iter(fields)
    for item in items:
        if not item:
            continue
        added, removed, path = item.split("\t", 2)
        if not path:
            next(items)  # the old path
            path = next(items)
        counts[path] = (None if added == "-" else int(added), None if removed == "-" else int(removed))
    return counts
