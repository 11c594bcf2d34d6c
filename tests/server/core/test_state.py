from __future__ import annotations

import itertools

import pytest

from server import TERMINAL_STATES, TaskState
from server.core.state import RETRYABLE_STATES, TRANSITIONS, can_move

ALLOWED = {
    (TaskState.QUEUED, TaskState.RUNNING),
    (TaskState.QUEUED, TaskState.CANCELLED),
    (TaskState.QUEUED, TaskState.FAILED),
    (TaskState.QUEUED, TaskState.INTERRUPTED),
    (TaskState.RUNNING, TaskState.COMPLETED),
    (TaskState.RUNNING, TaskState.FAILED),
    (TaskState.RUNNING, TaskState.CANCELLED),
    (TaskState.QUEUED, TaskState.INTERRUPTED),
    (TaskState.RUNNING, TaskState.INTERRUPTED),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(TaskState, TaskState)))
def test_transition_table_allows_exactly_the_documented_moves(source: TaskState, target: TaskState) -> None:
    assert can_move(source, target) is ((source, target) in ALLOWED)


def test_terminal_states_are_absorbing_and_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    for state in TERMINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
        assert state.terminal
    assert not TaskState.QUEUED.terminal
    assert not TaskState.RUNNING.terminal


def test_every_end_but_completed_can_be_retried() -> None:
    assert {TaskState.FAILED, TaskState.CANCELLED, TaskState.INTERRUPTED} == RETRYABLE_STATES
    assert TaskState.INTERRUPTED.terminal
