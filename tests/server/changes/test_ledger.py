"""The ledger: edit tasks' and applies' records as files under the state directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from server.changes.ledger import EditRecord, Ledger

pytestmark = pytest.mark.anyio


def _record(task_id: str) -> EditRecord:
    return EditRecord(
        task_id=task_id,
        group_id="g",
        label=task_id,
        repo="/r",
        base="b",
        worktree="/w",
        ref=f"refs/fanout/g/{task_id}",
    )


async def test_the_records_of_many_tasks_are_those_of_its_edit_tasks_in_the_order_asked(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path)
    for task_id in ("t-3", "t-1"):
        await ledger.put_edit(_record(task_id))
    found = await ledger.edits_of(["t-1", "t-2", "t-3"])
    assert list(found) == ["t-1", "t-3"]
    assert found["t-3"] == _record("t-3")


async def test_a_server_that_never_ran_an_edit_task_has_no_records(tmp_path: Path) -> None:
    assert await Ledger(tmp_path).edits_of(["t-1"]) == {}


async def test_a_record_another_process_writes_is_found_at_the_next_look(tmp_path: Path) -> None:
    reader, writer = Ledger(tmp_path), Ledger(tmp_path)  # task_output's, and an edit task's elsewhere
    assert await reader.edits_of(["t-1"]) == {}  # no directory yet
    await writer.put_edit(_record("t-1"))
    assert list(await reader.edits_of(["t-1"])) == ["t-1"]
    _settle(tmp_path)
    assert await reader.edits_of(["t-2"]) == {}  # the settled listing is kept
    await writer.put_edit(_record("t-2"))  # the directory changes: the listing is not trusted
    assert list(await reader.edits_of(["t-2"])) == ["t-2"]


async def test_tasks_a_settled_listing_does_not_name_are_answered_without_reading_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    await ledger.put_edit(_record("t-1"))
    _settle(tmp_path)
    assert list(await ledger.edits_of(["t-1", "t-2"])) == ["t-1"]  # a listing to keep
    reads: list[object] = []

    async def counted(*args: object, **kwargs: object) -> object:
        reads.append(args)
        raise AssertionError("read the directory")

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    assert await ledger.edits_of(["t-2", "t-3"]) == {}
    assert reads == []


def _settle(state_dir: Path) -> None:
    """The edit records' directory as if last changed a minute ago."""
    directory = state_dir / "changes" / "edits"
    past = time.time() - 60
    os.utime(directory, (past, past))
