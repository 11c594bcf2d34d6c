"""What the server knows of edit tasks and applies, kept in files under its state directory so that it
outlives the process (the change sets themselves are git refs: they outlive it anyway).

One JSON file per edit task (``edits/<task id>.json``) and per apply (``applies/<apply id>.json``),
each replaced whole (written aside, then renamed) so that a crash leaves the old or the new one, never
half of one. An edit task's record is written before its worktree exists, so that whatever a crash
leaves behind, the next server finds it (``Workshop.recover``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import anyio
from pydantic import BaseModel, ConfigDict

from .models import CheckResult

# A directory's listing is kept for as long as its modification time stays the same, once that time is
# this old: a directory changed twice within one tick of the file system's clock keeps its time.
_SETTLED_NS: Final = 2_000_000_000

EditStatus = Literal["preparing", "running", "verifying", "ended", "applied", "discarded"]


class EditRecord(BaseModel):
    """One edit task: where it works and what it made."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    group_id: str
    label: str
    repo: str
    base: str  #: the snapshot commit it started from
    scope: tuple[str, ...] = ()
    worktree: str
    ref: str  #: refs/fanout/<group>/<task>: its change set once it ended (the base until then)
    status: EditStatus = "preparing"
    head: str | None = None  #: the commit of its change set, once it ended
    pid: int = 0  #: the server process that ran it
    ended_at: float | None = None  #: wall clock, when its change set was committed: for retention
    kept_out: tuple[str, ...] = ()  #: paths of the worktree never committed (``environment.py``)
    verify: list[CheckResult] = []  #: its verify commands' results, once they ran


class Applied(BaseModel):
    """One change set as an apply wrote it into the user's tree."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    patch: str


class ApplyRecord(BaseModel):
    """One apply: what it wrote, and what the files it touched held right after."""

    model_config = ConfigDict(frozen=True)

    apply_id: str
    repo: str
    applied: list[Applied]
    after: dict[str, str | None]  #: path -> its blob id after the apply (None: the apply deleted it)
    undone: bool = False
    owner: str = ""  #: the principal that applied: only it (or an operator) may undo


class Ledger:
    """The records, as files under ``<state directory>/changes``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "changes"
        self._edits = self.root / "edits"  #: one Path, made once: edits_of runs at every task_output
        self._edits_listed: _Listing | None = None  #: the edit records' directory, as last listed

    @property
    def worktrees(self) -> Path:
        """Where edit tasks' worktrees live: outside every repository."""
        return self.root / "worktrees"

    async def put_edit(self, record: EditRecord) -> None:
        await anyio.to_thread.run_sync(_write, self._edits / f"{record.task_id}.json", record)

    async def edit(self, task_id: str) -> EditRecord | None:
        data = await anyio.to_thread.run_sync(_read, self._edits / f"{task_id}.json")
        return None if data is None else EditRecord.model_validate_json(data)

    async def edits_of(self, task_ids: Sequence[str]) -> dict[str, EditRecord]:
        """The records of those of ``task_ids`` that are edit tasks, in their order.

        task_output asks this of every task it shows, edit task or not, so the common answer (none) costs
        one ``stat`` here: no directory, or its listing unchanged since the last look and naming none of
        them. Otherwise one trip to a worker thread reads all of them (written by any process)."""
        if not _may_hold(self._edits, self._edits_listed, task_ids):
            return {}
        found, self._edits_listed = await anyio.to_thread.run_sync(_read_some, self._edits, list(task_ids))
        return {task_id: EditRecord.model_validate_json(data) for task_id, data in found.items()}

    async def edits(self) -> list[EditRecord]:
        found = await anyio.to_thread.run_sync(_read_all, self._edits)
        return [EditRecord.model_validate_json(data) for data in found]

    async def forget_edit(self, task_id: str) -> None:
        await anyio.to_thread.run_sync(_unlink, self._edits / f"{task_id}.json")

    async def put_apply(self, record: ApplyRecord) -> None:
        await anyio.to_thread.run_sync(_write, self.root / "applies" / f"{record.apply_id}.json", record)

    async def apply(self, apply_id: str) -> ApplyRecord | None:
        if not apply_id.replace("-", "").replace("_", "").isalnum():
            return None  # never a path of its own
        data = await anyio.to_thread.run_sync(_read, self.root / "applies" / f"{apply_id}.json")
        return None if data is None else ApplyRecord.model_validate_json(data)


def _write(path: Path, record: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as aside:
        aside.write(record.model_dump_json())
    os.replace(aside.name, path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


@dataclass(frozen=True, slots=True)
class _Listing:
    """The names in a directory while its modification time is ``mtime_ns``."""

    mtime_ns: int
    names: frozenset[str]


def _may_hold(directory: Path, listing: _Listing | None, task_ids: Sequence[str]) -> bool:
    """Whether ``directory`` may hold a record of one of ``task_ids``: False only when it is sure (a
    ``stat``, on the event loop: microseconds)."""
    try:
        mtime_ns = os.stat(directory).st_mtime_ns
    except FileNotFoundError:
        return False
    if listing is None or listing.mtime_ns != mtime_ns:
        return True
    return any(f"{task_id}.json" in listing.names for task_id in task_ids)


def _read_some(directory: Path, task_ids: list[str]) -> tuple[dict[str, str], _Listing | None]:
    """The records of ``task_ids`` found, and the directory's listing if it may be kept."""
    try:
        mtime_ns = os.stat(directory).st_mtime_ns  # before the listing: a change after it shows
        present = frozenset(os.listdir(directory))  # one look instead of a failed open per task
    except FileNotFoundError:
        return {}, None
    settled = time.time_ns() - mtime_ns > _SETTLED_NS
    found = {
        task_id: _read(directory / f"{task_id}.json") for task_id in task_ids if f"{task_id}.json" in present
    }
    records = {task_id: data for task_id, data in found.items() if data is not None}
    return records, _Listing(mtime_ns, present) if settled else None


def _read_all(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return [path.read_text() for path in sorted(directory.glob("*.json"))]


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
