"""The task table's one move: the transition check, the fold of a task's progress, the end hooks."""

from __future__ import annotations

from typing import cast

import pytest

from server import ErrorKind, RetryNotice, TaskState, Tokens
from server.config.pricing import PriceTable
from server.core.live import Live
from server.core.models import TaskSpec
from server.core.progress import Progress
from server.core.records import GroupRecord, TaskRecord
from server.core.store import MemoryStore
from server.core.table import TaskTable
from server.intake.prepare import PlannedTask

OWN_BYTES, SHARED_BYTES = 10, 100


def table_of(count: int) -> tuple[TaskTable, list[str]]:
    table = TaskTable(MemoryStore(), retention_s=60.0, max_finished=100)
    spec = TaskSpec(0, "p", None, "part", "m", "scripted", 60.0, ())
    records = [TaskRecord(f"t{i}", "g", spec, "alice") for i in range(count)]
    # The table never reads a task's request: only the runner does.
    lives = [Live(r.id, "g", cast(PlannedTask, None), OWN_BYTES) for r in records]
    table.add(GroupRecord("g", [r.id for r in records], "alice", shared_bytes=SHARED_BYTES), records, lives)
    return table, [r.id for r in records]


def start(table: TaskTable, task_id: str, heard: list[RetryNotice]) -> Progress:
    table.move(task_id, TaskState.RUNNING)
    live = table.live(task_id)
    assert live is not None
    progress = live.progress = Progress(
        task_id,
        "g",
        "p",
        prices=PriceTable.load(None),
        record_usage=table.record_usage,
        on_retry=heard.append,
    )
    return progress


async def test_a_move_the_transition_table_refuses_raises_and_changes_nothing() -> None:
    table, (task_id,) = table_of(1)

    with pytest.raises(RuntimeError, match="illegal transition queued -> completed"):
        table.move(task_id, TaskState.COMPLETED)
    table.move(task_id, TaskState.CANCELLED)
    with pytest.raises(RuntimeError, match="illegal transition cancelled -> running"):
        table.move(task_id, TaskState.RUNNING)

    record = table.task(task_id)
    assert record is not None and record.state is TaskState.CANCELLED and record.attempts == 0


async def test_an_end_folds_the_progress_into_the_record_then_calls_the_hooks_in_their_order() -> None:
    table, (task_id, other) = table_of(2)
    seen: list[tuple[str, TaskState, bool, float]] = []
    table.on_end(
        lambda record, group, live: seen.append(
            ("first", record.state, table.ended(record.id), table.held_bytes)
        ),
        lambda record, group, live: seen.append(
            ("second", record.state, live.progress is None, group.spent_usd)
        ),
    )
    heard: list[RetryNotice] = []
    progress = start(table, task_id, heard)
    progress.append("half an ans")
    progress.add_usage("claude-sonnet-5-5", Tokens(input_tokens=500_000))  # $1
    progress.restart("rate limited (429); retrying in 1.0 s (attempt 2)", ErrorKind.RATE_LIMITED)
    progress.append("half an answer")

    table.move(task_id, TaskState.FAILED)

    record = table.task(task_id)
    assert record is not None
    assert (record.output, record.attempts, record.model) == ("half an answer", 2, "claude-sonnet-5-5")
    assert record.note == "rate limited (429); retrying in 1.0 s (attempt 2)" and heard[0].attempt == 2
    assert seen == [
        ("first", TaskState.FAILED, True, SHARED_BYTES + OWN_BYTES),  # its own bytes already released
        ("second", TaskState.FAILED, False, 1.0),
    ]
    table.move(other, TaskState.CANCELLED, note="cancelled")
    assert table.held_bytes == 0  # the spawn's shared bytes go with its last task


async def test_a_completed_tasks_last_status_note_is_over_and_its_answer_is_what_the_runner_says() -> None:
    table, (task_id,) = table_of(1)
    progress = start(table, task_id, [])
    progress.status("waiting out a rate limit")
    progress.append("partial")

    table.move(task_id, TaskState.COMPLETED, output="the whole answer", model="m-1")

    record = table.task(task_id)
    assert record is not None
    assert (record.output, record.note, record.model, record.attempts) == ("the whole answer", None, "m-1", 1)
