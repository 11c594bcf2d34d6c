"""Edit tasks' worktrees and refs go by retention, like the tasks' records: once an edit task ended more
than ``retention_s`` ago, its worktree is removed (``git worktree remove``: its work has been in its ref
since it ended, and a worktree whose commit failed is never removed), its ref deleted and its record
forgotten. An applied task's worktree went with the apply; its ref goes now.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

from .git import GitFailed, git
from .ledger import EditRecord, Ledger
from .worktrees import remove_worktree

logger = logging.getLogger(__name__)

#: how often a server looks for edit tasks past retention (the task store prunes as often)
SWEEP_S: Final = 60.0


async def expire(ledger: Ledger, ended_before: float) -> list[str]:
    """Remove what edit tasks that ended before ``ended_before`` (wall clock) left; their ids."""
    gone: list[str] = []
    for record in await ledger.edits():
        if _expired(record, ended_before):
            try:
                await _remove(record)
            except GitFailed:
                logger.warning("could not remove the worktree or ref of edit task %s", record.task_id)
                continue
            await ledger.forget_edit(record.task_id)
            gone.append(record.task_id)
    return gone


async def sweep(ledger: Ledger, retention_s: float) -> None:
    """Expire what is past retention now; what went is logged, and so is a failure (housekeeping that
    failed once must not take the server down: the next sweep tries again)."""
    try:
        gone = await expire(ledger, time.time() - retention_s)
    except Exception:
        logger.exception("could not remove what edit tasks past retention left")
        return
    if gone:
        logger.info("past retention: removed the worktrees and refs of edit tasks %s", ", ".join(gone))


def _expired(record: EditRecord, ended_before: float) -> bool:
    if record.ended_at is None or record.ended_at >= ended_before:
        return False
    return record.status in ("applied", "discarded") or (record.status == "ended" and record.head is not None)


async def _remove(record: EditRecord) -> None:
    repo = Path(record.repo)
    if record.status == "ended":
        await remove_worktree(repo, Path(record.worktree))
    if record.status != "discarded":
        await git(repo, "update-ref", "-d", record.ref)
