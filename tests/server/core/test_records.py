"""A task's record: plain data that goes out as JSON and comes back equal, each field with one writer."""

from __future__ import annotations

import dataclasses
import json

import server.core as core_package
from server import ErrorKind, SpawnRequest, TaskError, TaskRequest, TaskState, Tokens
from server.core.live import Live
from server.core.models import TaskSpec
from server.core.records import GroupRecord, Spend, TaskRecord, from_json, group_from_json, to_json


def an_ended_record() -> TaskRecord:
    spec = TaskSpec(
        index=2,
        label="review auth",
        role="security reviewer",
        task="review the login flow",
        model="claude-sonnet-5-5",
        backend="anthropic",
        timeout_s=120.0,
        files=("src/auth.py",),
        output_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}},
        depends_on=(0, 1),
        known_sources=frozenset({"t-a", "t-b"}),
    )
    spend = Spend()
    spend.add(Tokens(input_tokens=1200, output_tokens=80, cache_read_tokens=900), 0.0042)
    return TaskRecord(
        id="t-abc",
        group_id="g-def",
        spec=spec,
        owner="alice",
        depends_on=("t-a", "t-b"),
        retry_of="t-old",
        state=TaskState.FAILED,
        output='{"ok": tru',
        structured={"ok": True, "found": [1, "two"]},
        stop_reason="end_turn",
        model="claude-sonnet-5-5-20260101",
        error=TaskError(kind=ErrorKind.INVALID_OUTPUT, message="the answer did not fit"),
        note="asking once more",
        attempts=2,
        started=10.5,
        ended=12.25,
        finished_at=1_800_000_000.0,
        spend=spend,
    )


def test_a_record_goes_out_as_json_and_comes_back_equal() -> None:
    record = an_ended_record()

    data = to_json(record)

    assert json.loads(data)["spec"]["known_sources"]  # plain JSON: any store can keep it
    again = from_json(data)
    assert again == record
    assert again.snapshot() == record.snapshot()


def test_a_group_goes_out_as_json_with_its_request_and_comes_back_equal() -> None:
    request = SpawnRequest(
        tasks=[
            TaskRequest(
                task="review auth", files=["src/auth.py"], depends_on=["db"], output_schema="findings"
            ),
            TaskRequest(task="review db", label="db", context="postgres", tools=["read"]),
        ],
        shared_context="A Flask app.",
        budget_usd=1.5,
        max_concurrency=2,
        output_schema={"type": "object"},
        backend="anthropic",
        tools=["read"],
    )
    group = GroupRecord("g-def", ["t-a", "t-b"], "alice", request=request, budget_usd=1.5, shared_bytes=12)
    group.spend.add(Tokens(input_tokens=5), 0.25)
    group.spent_usd = 0.25

    again = group_from_json(to_json(group))

    assert again == group
    assert again.request is not None and again.request.tasks[1].context == "postgres"


def test_a_record_holds_no_live_object() -> None:
    def fields(kind: type) -> set[str]:
        return {f.name for f in dataclasses.fields(kind)}

    assert not fields(TaskRecord) & {"scope", "progress", "planned", "deps", "warm_gate", "opens"}
    assert not fields(GroupRecord) & {"limiter"}
    assert {"scope", "progress", "planned"} <= fields(Live)


def test_the_core_docstring_names_the_one_writer_of_every_record_field() -> None:
    doc = core_package.__doc__ or ""
    table = doc[doc.index("its one writer") :]
    for kind in (TaskRecord, GroupRecord):
        for field in dataclasses.fields(kind):
            assert field.name in table, (
                f"{kind.__name__}.{field.name} has no writer in server/core/__init__.py"
            )
