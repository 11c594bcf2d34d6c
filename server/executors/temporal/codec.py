"""Between the engine's types and what travels through Temporal (``wire.py``): a task's spec and
request as JSON, how a task's call ended as a ``TaskEnd``, a workflow's task as the store's records."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from ...core.attempt import Ended
from ...core.models import SubagentRequest, TaskError, TaskSpec
from ...core.progress import Progress
from ...core.records import Spend
from ...core.state import ErrorKind
from ...core.store import Outcome
from . import wire


@cache
def _spec_adapter() -> TypeAdapter[TaskSpec]:
    return TypeAdapter(TaskSpec)


@cache
def _request_adapter() -> TypeAdapter[SubagentRequest]:
    return TypeAdapter(SubagentRequest)


def spec_json(spec: TaskSpec) -> str:
    return _spec_adapter().dump_json(spec).decode()


def spec_of(text: str) -> TaskSpec:
    return _spec_adapter().validate_json(text)


def request_json(request: SubagentRequest) -> str:
    return _request_adapter().dump_json(request).decode()


def request_of(text: str) -> SubagentRequest:
    return _request_adapter().validate_json(text)


def wire_spend(spend: Spend) -> wire.Spend:
    return wire.Spend(
        spend.input_tokens,
        spend.output_tokens,
        spend.cache_write_tokens,
        spend.cache_read_tokens,
        spend.cost_usd,
    )


def spend_of(spend: wire.Spend) -> Spend:
    return Spend(
        spend.input_tokens,
        spend.output_tokens,
        spend.cache_write_tokens,
        spend.cache_read_tokens,
        spend.cost_usd,
    )


def beat(progress: Progress, spend: Spend, earlier_attempts: int, chars: int) -> wire.Beat:
    """A running task's heartbeat: the newest ``chars`` of its answer so far, its note, tries and usage."""
    text = progress.text
    if text is not None and len(text) > chars:
        text = text[-chars:]
    attempts = earlier_attempts + progress.attempts
    if (in_flight := progress.unsettled()) is not None:
        # A call cut off with its worker is billed for what it had used: the next attempt starts from
        # this beat's usage.
        spend = replace(spend)
        spend.add(*in_flight)
    return wire.Beat(text, progress.note, attempts, progress.model, wire_spend(spend))


def task_end(ended: Ended, progress: Progress, spend: Spend, earlier_attempts: int) -> wire.TaskEnd:
    """How a task's call ended, for its workflow; what ``ended`` leaves out comes from its progress, as
    ``TaskTable.move`` takes it."""
    error = ended.error
    structured = None if ended.structured is None else json.dumps(ended.structured)
    return wire.TaskEnd(
        state=ended.state.value,
        output=ended.output if ended.output is not None else progress.text,
        structured_json=structured,
        stop_reason=ended.stop_reason,
        model=ended.model or progress.model,
        error_kind=error.kind.value if error else None,
        error_message=error.message if error else None,
        note=ended.note if ended.note is not None else progress.note,
        attempts=earlier_attempts + progress.attempts,
        spend=wire_spend(spend),
    )


def outcome_of(end: wire.TaskEnd, finished_at: float) -> Outcome:
    """A workflow's task end as the store's ``Outcome`` (``finished_at``: wall clock)."""
    error = None
    if end.error_kind is not None:
        error = TaskError(kind=ErrorKind(end.error_kind), message=end.error_message or "")
    structured: Any = None if end.structured_json is None else json.loads(end.structured_json)
    return Outcome(
        end.output, structured, end.stop_reason, end.model, error, end.note, end.attempts, finished_at
    )
