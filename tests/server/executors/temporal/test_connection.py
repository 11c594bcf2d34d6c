"""The values that travel through Temporal are read at a cost that does not grow in Python with a
group's size: the workflow reads a spawn's input, and a front end a group's view, in one step each, and
the SDK fails a workflow step that holds its thread 2 s (under load, a 2,000-task spawn's first step
and every replay of it did, with the SDK's default converter: 229 Python calls a task)."""

from __future__ import annotations

import gc
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from temporalio.converter import DataConverter

from server.executors.temporal import wire
from server.executors.temporal.connection import data_converter


def spawn_of(n: int) -> wire.GroupSpawn:
    calls = [
        wire.TaskCall(f"t-x.{i}", f"part {i}", 60.0, [], '{"task": 1}', '{"prompt": 1}') for i in range(n)
    ]
    return wire.GroupSpawn("g-x", "alice", calls, max_concurrency=4)


def view_of(n: int) -> wire.GroupView:
    end = wire.TaskEnd("completed", output="an answer", spend=wire.Spend(input_tokens=3, cost_usd=0.01))
    tasks = [wire.TaskView(f"t-x.{i}", "completed", 1.0, 2.0, end, '{"task": 1}') for i in range(n)]
    return wire.GroupView("g-x", "alice", None, tasks, n)


def python_calls_to_read(value: Any, tmp_path: Path) -> tuple[int, Any]:
    """How many Python functions reading ``value`` back through the executor's converter calls (its
    type read once before), and what it read."""
    converter = data_converter(tmp_path)
    calls_to_read(value, converter)  # the first read of a type builds its reader
    return calls_to_read(value, converter)


def calls_to_read(value: Any, converter: DataConverter) -> tuple[int, Any]:
    payloads = converter.payload_converter.to_payloads([value])
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    # The collector off while counting: a collection would run other objects' finalizers in this thread.
    gc.collect()
    gc.disable()
    sys.setprofile(count)
    try:
        [read] = converter.payload_converter.from_payloads(payloads, [type(value)])
    finally:
        sys.setprofile(None)
        gc.enable()
    return calls, read


def test_a_spawns_input_is_read_whole_with_no_python_work_a_task(tmp_path: Path) -> None:
    small, _ = python_calls_to_read(spawn_of(1), tmp_path)
    large, read = python_calls_to_read(spawn_of(2_000), tmp_path)
    assert read == spawn_of(2_000)
    assert large <= small + 20


def test_a_groups_view_is_read_whole_with_no_python_work_a_task(tmp_path: Path) -> None:
    small, _ = python_calls_to_read(view_of(1), tmp_path)
    large, read = python_calls_to_read(view_of(2_000), tmp_path)
    assert read == view_of(2_000)
    assert large <= small + 20


def test_the_copy_the_sdk_makes_of_the_converter_for_each_call_reads_with_the_readers_already_built(
    tmp_path: Path,
) -> None:
    call = wire.SubagentCall("t-x.0", "g-x", "part 0", '{"task": 1}', '{"prompt": 1}', [], 400_000)
    converter = data_converter(tmp_path)
    calls_to_read(call, converter)
    warm, _ = calls_to_read(call, converter)
    # the SDK copies the converter with each activity's storage context: the copy builds a new
    # payload converter, and it must not build its readers again (thousands of calls each)
    calls, read = calls_to_read(call, replace(converter))
    assert read == call
    assert calls <= warm + 20
