"""The engine's one API for change sets, over the ledger and git: what the MCP tools call.

It knows edit tasks by their records (``ledger.py``); whether a task has finished is the registry's to
say, so the tools check that first. Applies and discards of one server are serialised: two applies
interleaved would check each against a tree the other is changing.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from pathlib import Path

import anyio

from ..core.callers import Caller
from ..core.errors import BackendUnavailable, InvalidInput
from .applying import apply_sets, undo_apply
from .changeset import describe, patch_of
from .disk import DiskMeter
from .git import GitFailed, git
from .ledger import EditRecord, Ledger
from .matrix import conflict_matrix, preview
from .models import ApplyOutcome, ChangeSet, ChangesOverview, UndoOutcome
from .retention import SWEEP_S, sweep
from .worktrees import commit_worktree, remove_worktree, unlock

logger = logging.getLogger(__name__)

_BUSY = ("preparing", "running", "verifying")  #: its worktree is in use while its server lives


class Workshop:
    """Change sets of edit tasks: read, compared, applied, undone, discarded, recovered after a crash."""

    def __init__(self, state_dir: Path) -> None:
        self.ledger = Ledger(state_dir)
        self.disk = DiskMeter(self.ledger.worktrees)
        self._lock = anyio.Lock()

    async def records(self, task_ids: Sequence[str]) -> dict[str, EditRecord]:
        """The edit records of those of ``task_ids`` that are edit tasks (that started)."""
        return await self.ledger.edits_of(task_ids)

    async def ready(self, task_ids: Sequence[str]) -> list[EditRecord]:
        """The records of edit tasks that ended and were neither applied nor discarded, in order.

        Raises:
            InvalidInput: one is not an edit task, has not ended, or was applied or discarded.
        """
        return [await self._ready(task_id) for task_id in task_ids]

    async def changes(self, task_ids: Sequence[str]) -> dict[str, ChangeSet]:
        return {task_id: await describe(record) for task_id, record in (await self.records(task_ids)).items()}

    async def patch(self, task_id: str) -> str:
        record = await self._edit(task_id)
        return (await patch_of(record)).decode("utf-8", "replace")

    async def overview(self, task_ids: Sequence[str]) -> ChangesOverview | None:
        """Shared files, the conflict matrix and an apply preview over the edit tasks of ``task_ids``
        (None when none is one)."""
        records = [r for r in (await self.records(task_ids)).values() if r.status != "discarded"]
        if not records:
            return None
        touched: defaultdict[str, list[str]] = defaultdict(list)
        for record in records:
            for change in (await describe(record)).files:
                touched[change.path].append(record.task_id)
        conflicts, clean = await conflict_matrix(records)
        shared = {path: ids for path, ids in sorted(touched.items()) if len(ids) > 1}
        steps = await preview(records)
        return ChangesOverview(shared_files=shared, conflicts=conflicts, clean_pairs=clean, preview=steps)

    async def apply(self, task_ids: Sequence[str], dry_run: bool, *, caller: Caller) -> ApplyOutcome:
        """Apply the change sets in the order given; on a real apply, the applied tasks' worktrees go.
        The apply belongs to ``caller``, as the tasks do (the tools select them with it).

        Raises:
            InvalidInput: a task is not an edit task, has not ended, or was applied or discarded.
        """
        async with self._lock:
            records = [await self._ready(task_id) for task_id in task_ids]
            outcome, kept = await apply_sets(records, dry_run)
            for apply_record in kept:
                await self.ledger.put_apply(apply_record.model_copy(update={"owner": caller.principal}))
            for record in records:
                if record.task_id in outcome.applied and not dry_run:
                    await remove_worktree(Path(record.repo), Path(record.worktree))
                    await self.ledger.put_edit(record.model_copy(update={"status": "applied"}))
            return outcome

    async def undo(self, apply_id: str, *, caller: Caller) -> UndoOutcome:
        """Reverse an apply whose files nobody changed since; else refuse with the reverse patch.

        Raises:
            InvalidInput: no such apply (another principal's answers the same), or it was undone already.
        """
        async with self._lock:
            record = await self.ledger.apply(apply_id)
            if record is not None and not caller.sees(record.owner):
                record = None
            if record is None or record.undone:
                said = "was undone already" if record is not None else "is not an apply this server made"
                raise InvalidInput(f"apply {apply_id!r} {said}: apply_changes returns the id of each apply")
            changed = await undo_apply(record)
            if changed:
                reverse = await self._reverse_patch([a.task_id for a in record.applied])
                return UndoOutcome(
                    apply_id=apply_id, undone=False, changed_since=changed, reverse_patch=reverse
                )
            await self.ledger.put_apply(record.model_copy(update={"undone": True}))
            for applied in record.applied:
                edit = await self.ledger.edit(applied.task_id)
                if edit is not None:
                    await self.ledger.put_edit(edit.model_copy(update={"status": "ended"}))
            return UndoOutcome(apply_id=apply_id, undone=True, changed_since=[], reverse_patch=None)

    async def discard(self, task_ids: Sequence[str]) -> list[str]:
        """Remove the edit tasks' worktrees and refs; the ids discarded."""
        async with self._lock:
            discarded: list[str] = []
            for record in (await self.records(task_ids)).values():
                if record.status in _BUSY and _alive(record.pid):
                    raise InvalidInput(f"task {record.task_id} is still running: cancel_tasks it first")
                repo = Path(record.repo)
                await remove_worktree(repo, Path(record.worktree))
                await git(repo, "update-ref", "-d", record.ref)
                await self.ledger.put_edit(record.model_copy(update={"status": "discarded"}))
                discarded.append(record.task_id)
            return discarded

    async def expire(self, retention_s: float) -> None:
        """Remove what edit tasks that ended more than ``retention_s`` ago left (``retention.py``)."""
        async with self._lock:
            await sweep(self.ledger, retention_s)

    async def tidy(self, retention_s: float) -> None:
        """``expire`` every ``SWEEP_S``, until cancelled."""
        while True:
            await anyio.sleep(SWEEP_S)
            await self._without_git_warned(self.expire(retention_s))

    async def open(self, retention_s: float) -> None:
        """At start: ``recover``, then ``expire``."""
        await self._without_git_warned(self.recover())
        await self._without_git_warned(self.expire(retention_s))

    @staticmethod
    async def _without_git_warned(housekeeping: Awaitable[object]) -> None:
        """Tidy what edit tasks left, or say why not: a server with no git on its PATH still starts and
        serves (its edit tasks are refused at the call), whatever earlier servers left."""
        try:
            await housekeeping
        except BackendUnavailable as exc:
            logger.warning("what edit tasks left was not tidied: %s", exc)

    async def recover(self) -> list[str]:
        """At start: commit and unlock the worktrees of edit tasks whose server died, prune what git
        registered of worktrees that are gone; what is kept, one line each (logged too)."""
        kept: list[str] = []
        repos: set[str] = set()
        for record in await self.ledger.edits():
            if record.status in ("applied", "discarded"):
                continue
            repos.add(record.repo)
            if record.status in _BUSY and not _alive(record.pid):
                record = await self._rescue(record)
            kept.append(f"{record.task_id} ({record.status}): {record.worktree}")
        for repo in repos:
            try:
                await git(Path(repo), "worktree", "prune")
            except GitFailed:
                logger.warning("could not prune the worktrees of %s", repo)
        if kept:
            logger.info("edit tasks' worktrees kept until applied or discarded: %s", "; ".join(kept))
        return kept

    async def _rescue(self, record: EditRecord) -> EditRecord:
        worktree = Path(record.worktree)
        head = None
        if await anyio.Path(worktree).is_dir():
            try:
                message = f"fanout {record.group_id}/{record.task_id}"
                if record.status != "verifying":  # else it was committed before its verify started
                    head = await commit_worktree(worktree, record.ref, message, record.kept_out)
                await unlock(Path(record.repo), worktree)
            except GitFailed:
                logger.exception("could not save the worktree of task %s", record.task_id)
        ended = {"status": "ended", "head": head or record.head, "ended_at": record.ended_at or time.time()}
        rescued = record.model_copy(update=ended)
        await self.ledger.put_edit(rescued)
        return rescued

    async def _edit(self, task_id: str) -> EditRecord:
        record = await self.ledger.edit(task_id)
        if record is None:
            raise InvalidInput(f"task {task_id} is not an edit task (or never started): it has no changes")
        return record

    async def _ready(self, task_id: str) -> EditRecord:
        record = await self._edit(task_id)
        if record.status in _BUSY:
            raise InvalidInput(f"task {task_id} has not finished: wait for it with task_output")
        if record.status in ("applied", "discarded"):
            raise InvalidInput(f"task {task_id}'s changes were {record.status} already")
        return record

    async def _reverse_patch(self, task_ids: Sequence[str]) -> str:
        parts = [await patch_of(await self._edit(task_id), reverse=True) for task_id in reversed(task_ids)]
        return b"".join(parts).decode("utf-8", "replace")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
