from __future__ import annotations

from server import Counts, TaskState


def test_counts_tally_every_state_and_add_up() -> None:
    states = [TaskState.QUEUED, *[TaskState.RUNNING] * 2, *[TaskState.COMPLETED] * 3, *[TaskState.FAILED] * 4,
              *[TaskState.CANCELLED] * 5, *[TaskState.INTERRUPTED] * 6]  # fmt: skip
    counts = Counts.of(states)
    assert counts.model_dump() == {
        "queued": 1, "running": 2, "completed": 3, "failed": 4, "cancelled": 5, "interrupted": 6,
    }  # fmt: skip
    assert (counts.ended, counts.retryable, counts.total) == (18, 15, 21)
    assert Counts.of([]) == Counts() and Counts().total == 0


def test_counts_of_a_tally_take_a_missing_state_as_none() -> None:
    assert Counts.of_tally({TaskState.FAILED: 2}) == Counts(failed=2)
