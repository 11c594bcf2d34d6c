"""A task id says what its handle stands for: read back from the id alone, by any process."""

from __future__ import annotations

import pytest

from tools.tasks.handles import Handle, handle_for, parse


def test_a_run_with_the_default_synthesis_is_its_group_id_and_any_other_handle_starts_with_it() -> None:
    plain = handle_for("run_parallel", {"tasks": []}, {"group_id": "g-abc", "done": False})
    asked = handle_for(
        "run_parallel", {"instructions": "why", "mode": "llm"}, {"group_id": "g-abc", "done": False}
    )
    assert plain is not None and plain.task_id == "g-abc"
    assert asked is not None and asked.task_id.startswith("g-abc.run.")
    assert parse(asked.task_id) == asked and parse("g-abc") == plain


def test_a_waiting_calls_handle_keeps_its_arguments_but_the_wait() -> None:
    answer = {"done": False, "groups": [{"group_id": "g-xyz"}]}
    found = handle_for("task_output", {"task_ids": ["t-1"], "wait_s": 30, "include": "status"}, answer)
    assert found is not None and parse(found.task_id) == found
    assert found == Handle("task_output", "g-xyz", {"task_ids": ["t-1"], "include": "status"})


@pytest.mark.parametrize(
    ("tool", "answer"),
    [
        ("task_output", {"done": True}),
        ("synthesize", {"error": {"kind": "not_found"}}),
        ("list_tasks", {"done": False}),
    ],
)
def test_a_call_that_finished_failed_or_never_waits_needs_no_handle(
    tool: str, answer: dict[str, object]
) -> None:
    assert handle_for(tool, {}, answer) is None


@pytest.mark.parametrize(
    "task_id", ["", "t-abc", "g-a.b", "g-a.list_tasks.e30", "g-a.run.!!", "g-a.run.WzFd"]
)
def test_an_id_that_stands_for_no_handle_is_none(task_id: str) -> None:
    assert parse(task_id) is None
