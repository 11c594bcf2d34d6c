"""An edit task's run: its worktree made before the agent starts, and its work committed when it ends.

``EditingBackend`` wraps the backend the task runs on (its name, traits and bounds are that backend's):
it writes the task's record, makes a locked worktree of the spawn's snapshot under the server's state
directory, runs the agent there with the instructions of an edit task, and, however the agent ends
(an answer, a failure, a cancel, a timeout), commits the worktree to ``refs/fanout/<group>/<task>`` and
unlocks it. The worktree stays until its group is applied or discarded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import anyio

from ..backends import Backend, TaskSink, Traits
from ..config.settings import Settings, default_store
from ..core.durable import store_path
from ..core.errors import TaskFailure
from ..core.models import SubagentRequest, SubagentResult
from ..core.progress import Progress
from ..core.state import ErrorKind
from .checks import run_verify
from .environment import Environment, furnish, plan
from .git import GitFailed
from .ledger import EditRecord, Ledger
from .models import CheckResult
from .worktrees import commit_worktree, open_worktree, unlock

logger = logging.getLogger(__name__)

# How long the commit of a cancelled or timed-out task's worktree may take: its work must reach its ref.
_COMMIT_GRACE_S: Final = 120.0


def state_dir(settings: Settings) -> Path:
    """The server's state directory: the store file's, or the per-user default one (``--store memory``)."""
    return (store_path(settings) or default_store()).parent


def repo_key(repo: Path) -> str:
    """A short name for a repository's worktrees' directory: its name and a digest of its path."""
    return f"{repo.name[:40]}-{hashlib.sha256(str(repo).encode()).hexdigest()[:10]}"


@dataclass(frozen=True, slots=True)
class EditTarget:
    """Where an edit task works: a repository, the spawn's snapshot of it, and the task's scope."""

    repo: Path
    base: str
    scope: tuple[str, ...]
    start: str | None = None  #: the commit its worktree starts from, if not the base (``resolution.py``)
    verify: tuple[str, ...] = ()  #: configured commands run in the worktree once its work is committed
    environment: Environment = field(default_factory=Environment)


class EditingBackend(Backend):
    """Runs one edit task on ``inner`` in a worktree of its own."""

    def __init__(self, inner: Backend, target: EditTarget, ledger: Ledger, label: str) -> None:
        self._inner = inner
        self._target = target
        self._ledger = ledger
        self._label = label

    @property
    def target(self) -> EditTarget:
        return self._target

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def traits(self) -> Traits:
        return self._inner.traits

    def model_for(self, asked: str | None, server_default: str) -> str:
        return self._inner.model_for(asked, server_default)

    def unavailable_reason(self) -> str | None:
        return self._inner.unavailable_reason()

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        record = self._record(sink)
        worktree = Path(record.worktree)
        await self._ledger.put_edit(record)
        try:
            reason = f"fanout-mcp task {record.task_id} (pid {record.pid})"
            start = self._target.start or self._target.base
            await open_worktree(self._target.repo, worktree, start, record.ref, reason)
        except GitFailed as exc:
            raise TaskFailure(
                ErrorKind.COMMAND_FAILED, f"could not make the task's worktree: {exc}"
            ) from None
        prompt = request.prompt + instructions(self._target.scope)
        kept_out: list[str] = []
        ended = None
        try:
            furnishing = await plan(self._target.repo, self._target.environment)
            kept_out.extend(furnishing.paths)
            record = record.model_copy(update={"kept_out": furnishing.paths})
            await self._ledger.put_edit(record)  # before anything is copied: a crash's commit leaves it out
            await furnish(self._target.repo, worktree, furnishing, self._target.environment, kept_out)
            record = record.model_copy(update={"status": "running", "kept_out": tuple(kept_out)})
            await self._ledger.put_edit(record)
            result = await self._inner.run(replace(request, cwd=worktree, edit=True, prompt=prompt), sink)
        finally:
            with anyio.move_on_after(_COMMIT_GRACE_S, shield=True):
                ended = await self._close(record.model_copy(update={"kept_out": tuple(kept_out)}))
        if ended is not None and self._target.verify:
            await self._verify(ended)
        return result

    async def _verify(self, record: EditRecord) -> None:
        """Run the task's verify commands in its worktree, its change set committed (a discard waits)."""
        await self._ledger.put_edit(record.model_copy(update={"status": "verifying"}))
        results: list[CheckResult] = []
        try:
            commands = self._target.environment.commands
            results = await run_verify(commands, self._target.verify, Path(record.worktree))
        finally:
            with anyio.CancelScope(shield=True):
                await self._ledger.put_edit(record.model_copy(update={"status": "ended", "verify": results}))

    def _record(self, sink: TaskSink) -> EditRecord:
        group_id = sink.group_id if isinstance(sink, Progress) else "spawn"
        task_id = sink.task_id
        repo = self._target.repo
        return EditRecord(
            task_id=task_id,
            group_id=group_id,
            label=self._label,
            repo=str(repo),
            base=self._target.base,
            scope=self._target.scope,
            worktree=str(self._ledger.worktrees / repo_key(repo) / group_id / task_id),
            ref=f"refs/fanout/{group_id}/{task_id}",
            pid=os.getpid(),
        )

    async def _close(self, record: EditRecord) -> EditRecord | None:
        """Commit what the agent left and unlock the worktree; the ended record, or None if that failed
        (logged: the work stays there)."""
        worktree = Path(record.worktree)
        message = f"fanout {record.group_id}/{record.task_id}"
        try:
            head = await commit_worktree(worktree, record.ref, message, record.kept_out)
            await unlock(Path(record.repo), worktree)
        except GitFailed:
            logger.exception("could not commit the worktree of task %s (%s)", record.task_id, worktree)
            return None
        ended = record.model_copy(update={"status": "ended", "head": head, "ended_at": time.time()})
        await self._ledger.put_edit(ended)
        return ended


def instructions(scope: tuple[str, ...]) -> str:
    """What an edit task is told on top of its task."""
    where = f" Change only files matching {', '.join(scope)}." if scope else ""
    return (
        "\n\nYou are an implementer: make the change yourself, in the files of your workspace (your working "
        "directory: a private copy of the user's repository; use paths relative to it)."
        f"{where} Do not run git commands: the server records your changes when you finish. End with a "
        "short summary of what you changed and why."
    )
