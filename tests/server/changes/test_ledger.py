"""The ledger: edit tasks' and applies' records as files under the state directory."""

from __future__ import annotations

from pathlib import Path

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
