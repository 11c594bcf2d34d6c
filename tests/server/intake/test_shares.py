"""budget_usd: once a spawn's calls have cost that much, none of its other tasks starts."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from server import (
    ErrorKind,
    InvalidInput,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskRequest,
    TaskSink,
    TaskState,
    Tokens,
    open_registry,
)
from tests.server.fakes import ME, Handler, ScriptedBackend

MakeSettings = Callable[..., Settings]


def costing(tokens: int) -> Handler:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.add_usage("claude-sonnet-5-5", Tokens(input_tokens=tokens))  # $2 per million input tokens
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    return handler


async def test_tasks_not_started_when_the_budget_is_spent_end_cancelled_as_budget_exceeded(
    make_settings: MakeSettings,
) -> None:
    backend = ScriptedBackend(costing(1_000_000))  # each task costs $2
    request = SpawnRequest(
        tasks=[TaskRequest(task=f"t{i}") for i in range(5)], max_concurrency=1, budget_usd=3.0
    )
    async with open_registry(make_settings(), backend) as registry:
        receipt = await registry.spawn(request, caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        snaps = registry.snapshots(ids)
        summary = registry.group_summary(receipt.group_id)
    assert [s.state for s in snaps] == [TaskState.COMPLETED] * 2 + [TaskState.CANCELLED] * 3
    assert len(backend.calls) == 2  # $2, then $4 >= $3: nothing more starts
    for snap in snaps[2:]:
        assert snap.error is not None and snap.error.kind is ErrorKind.BUDGET_EXCEEDED
        assert "budget_usd of $3 was reached" in snap.error.message
    assert (summary.budget_usd, summary.spent_usd, summary.usage.cost_usd) == (3.0, 4.0, 4.0)


async def test_without_a_budget_everything_runs_and_a_bad_budget_is_refused(
    make_settings: MakeSettings,
) -> None:
    backend = ScriptedBackend(costing(1_000_000))
    async with open_registry(make_settings(), backend) as registry:
        receipt = await registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task=f"t{i}") for i in range(3)]), caller=ME
        )
        with anyio.fail_after(5):
            await registry.wait([t.task_id for t in receipt.tasks])
        assert registry.group_summary(receipt.group_id).spent_usd == 6.0
        for bad in (0.0, -1.0, float("inf"), float("nan")):
            with pytest.raises(InvalidInput, match="budget_usd must be a positive number"):
                await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="x")], budget_usd=bad), caller=ME)


async def test_a_budget_warns_when_a_models_price_is_unknown(make_settings: MakeSettings) -> None:
    async with open_registry(make_settings(), ScriptedBackend()) as registry:
        receipt = await registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task="x", model="my-own-model")], budget_usd=1.0), caller=ME
        )
    assert any("my-own-model is unknown" in w for w in receipt.warnings)


async def test_a_call_with_no_tokens_and_no_cost_said_makes_the_cost_unknown_even_for_a_priced_model(
    make_settings: MakeSettings,
) -> None:
    # What a killed agent CLI or the client's model (sampling) reports: it ran, and nobody said the cost.
    async def silent(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.add_usage("claude-sonnet-5-5", Tokens())
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    async with open_registry(make_settings(), ScriptedBackend(silent)) as registry:
        receipt = await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="t")]), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        (snap,) = registry.snapshots(ids)
    assert snap.state is TaskState.COMPLETED and snap.usage.cost_usd is None
