"""The timeline's moments, from snapshots read at known times and from retry notices."""

from __future__ import annotations

from server import ErrorKind, RetryNotice, TaskSnapshot, TaskState, Usage
from tools.dashboard.timeline import Timeline


def snap(task_id: str, state: TaskState, elapsed: float | None) -> TaskSnapshot:
    return TaskSnapshot(
        task_id=task_id, group_id="g-1", index=0, label=task_id, role=None, state=state, backend="anthropic",
        model="m", output=None, partial=True, usage=Usage(), attempts=1, elapsed_s=elapsed,
    )  # fmt: skip


def test_a_task_seen_queued_then_running_then_ended_gets_its_exact_start_and_end() -> None:
    timeline = Timeline()
    timeline.observe([snap("t-1", TaskState.QUEUED, None)], now=100.0)
    timeline.observe([snap("t-1", TaskState.RUNNING, 2.0)], now=105.0)  # started at 103
    bars, span = timeline.bars([snap("t-1", TaskState.COMPLETED, 4.5)], now=110.0)
    (bar,) = bars
    assert (bar.queued, bar.started, bar.ended, bar.seen_late) == (0.0, 3.0, 7.5, False)
    assert span == 7.5


def test_retries_are_marked_when_the_registry_tells_of_them() -> None:
    timeline = Timeline()
    timeline.observe([snap("t-1", TaskState.RUNNING, 0.0)], now=1.0)
    timeline.retried(RetryNotice("t-1", "g-1", "t-1", 2, ErrorKind.RATE_LIMITED, "429: waiting 1 s"))
    bars, _ = timeline.bars([snap("t-1", TaskState.RUNNING, 0.5)])
    assert len(bars[0].retries) == 1


def test_a_task_first_seen_ended_shows_its_length_only() -> None:
    timeline = Timeline()
    bars, span = timeline.bars(
        [snap("t-1", TaskState.FAILED, 3.0), snap("t-2", TaskState.COMPLETED, 1.0)], now=50.0
    )
    assert [(b.started, b.ended, b.seen_late) for b in bars] == [(0.0, 3.0, True), (0.0, 1.0, True)]
    assert span == 3.0
