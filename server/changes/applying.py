"""Change sets into the user's working tree, and back out.

Only the working tree is written (``git apply`` without ``--index``: HEAD, the index, branches and the
stash stay as they are), each set in the order given and after ``git apply --check`` against the tree as
it is by then; a set that does not apply is skipped with the paths git names and the rest go on. A dry
run does the same in a temporary index of a fresh snapshot, touching nothing. An apply keeps what the
files it touched held right after, so that undo can tell whether anyone changed them since.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio

from .changeset import describe, patch_of
from .git import GitFailed, git
from .ledger import Applied, ApplyRecord, EditRecord
from .models import ApplyOutcome, Skipped
from .repository import snapshot, tree_of

# How git apply names a path it cannot patch: "error: patch failed: PATH:LINE", "error: PATH: patch does
# not apply", "error: PATH: already exists in working directory", "error: PATH: No such file or directory".
_PATHS = re.compile(r"^error: (?:patch failed: (.+):\d+|(?!patch failed: )(.+?): .*)$", re.MULTILINE)


async def apply_sets(records: Sequence[EditRecord], dry_run: bool) -> tuple[ApplyOutcome, list[ApplyRecord]]:
    """Apply each record's change set in order (or try it, for a dry run); the outcome and, for a real
    apply, one apply record per repository."""
    applied: list[str] = []
    skipped: list[Skipped] = []
    done: dict[str, list[Applied]] = {}
    with tempfile.TemporaryDirectory(prefix="fanout-apply-") as scratch:
        indexes: dict[str, dict[str, str]] = {}
        for record in records:
            patch = await patch_of(record)
            if not patch:
                skipped.append(Skipped(task_id=record.task_id, why="it changed nothing"))
                continue
            env = await _dry_index(record, Path(scratch), indexes) if dry_run else None
            problem = await _try_apply(Path(record.repo), patch, env)
            if problem is not None:
                skipped.append(problem.model_copy(update={"task_id": record.task_id}))
                continue
            applied.append(record.task_id)
            done.setdefault(record.repo, []).append(
                Applied(task_id=record.task_id, patch=patch.decode("latin-1"))
            )
    apply_id = None if dry_run or not applied else f"a-{secrets.token_urlsafe(9)}"
    kept = (
        []
        if apply_id is None
        else [await _record(apply_id, repo, sets, records) for repo, sets in done.items()]
    )
    return ApplyOutcome(dry_run=dry_run, apply_id=apply_id, applied=applied, skipped=skipped), kept


async def _try_apply(repo: Path, patch: bytes, env: dict[str, str] | None) -> Skipped | None:
    cached = ["--cached"] if env is not None else []
    try:
        await git(repo, "apply", *cached, "--check", "-", stdin=patch, env=env)
    except GitFailed as exc:
        paths = sorted({first or second for first, second in _PATHS.findall(exc.stderr)})
        return Skipped(task_id="", why="it does not apply to the tree as it is now", paths=paths)
    await git(repo, "apply", *cached, "-", stdin=patch, env=env)
    return None


async def _dry_index(record: EditRecord, scratch: Path, indexes: dict[str, dict[str, str]]) -> dict[str, str]:
    """A temporary index holding a fresh snapshot of the record's repository (one per repository)."""
    if record.repo not in indexes:
        repo = Path(record.repo)
        tree = await tree_of(repo, await snapshot(repo, "fanout-mcp: dry run", parent=record.base))
        env = {"GIT_INDEX_FILE": str(scratch / f"index-{len(indexes)}")}
        await git(repo, "read-tree", tree, env=env)
        indexes[record.repo] = env
    return indexes[record.repo]


async def _record(
    apply_id: str, repo: str, sets: list[Applied], records: Sequence[EditRecord]
) -> ApplyRecord:
    applied = {s.task_id for s in sets}
    touched: set[str] = set()
    for record in records:
        if record.task_id in applied:
            changes = await describe(record)
            touched |= {f.path for f in changes.files} | {f.old_path for f in changes.files if f.old_path}
    after = {path: await blob_of(Path(repo), path) for path in sorted(touched)}
    return ApplyRecord(apply_id=apply_id, repo=repo, applied=sets, after=after)


async def blob_of(repo: Path, path: str) -> str | None:
    """The blob id of a working-tree file as it is now (None: there is none)."""
    if not await anyio.Path(repo / path).is_file():
        return None
    return (await git(repo, "hash-object", "--", path)).line()


async def undo_apply(record: ApplyRecord) -> list[str]:
    """Reverse an apply if the files it touched are as it left them; else the files changed since (and
    nothing is done)."""
    repo = Path(record.repo)
    changed = [path for path, blob in record.after.items() if await blob_of(repo, path) != blob]
    if changed:
        return changed
    for applied in reversed(record.applied):
        await git(repo, "apply", "-R", "-", stdin=applied.patch.encode("latin-1"))
    return []
