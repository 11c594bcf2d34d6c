"""A plan stopped part-way: what finished is kept, what did not is cancelled, and no model is called."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import anyio
import pytest

from fanout_mcp.server import Settings, SubagentRequest, SubagentResult, TaskSink, TaskState, open_runtime
from fanout_mcp.server.plan import Plan, SynthesisOptions, start_plan, stop_plan
from tests.server.fakes import ScriptedBackend

MakeSettings = Callable[..., Settings]


@pytest.mark.parametrize(
    ("mode", "merged"), [("merge", True), ("auto", True), ("llm", False), ("none", False)]
)
async def test_a_stopped_plan_keeps_what_completed_cancels_the_rest_and_merges_only_without_a_model(
    make_settings: MakeSettings, mode: Literal["auto", "llm", "merge", "none"], merged: bool
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if "slow" in request.prompt:
            await anyio.sleep_forever()  # until cancelled
        return SubagentResult(text="the quick answer", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler)
    plan = Plan.model_validate(
        {"tasks": [{"task": "quick"}, {"task": "slow"}], "synthesis": SynthesisOptions(mode=mode)}
    )
    async with open_runtime(make_settings(), backend) as runtime:
        receipt = await start_plan(runtime, plan)
        quick, slow = (t.task_id for t in receipt.tasks)
        with anyio.fail_after(5):
            await runtime.registry.wait([quick])
            await backend.wait_calls(2)
            outcome = await stop_plan(runtime, plan, receipt, "stopped by SIGINT")

    assert [t.state for t in outcome.tasks] == [TaskState.COMPLETED, TaskState.CANCELLED]
    assert outcome.tasks[1].note == "stopped by SIGINT"
    assert outcome.stopped == "stopped by SIGINT"
    assert len(backend.calls) == 2  # no synthesis task was run
    if not merged:
        assert outcome.synthesis is None
        return
    assert outcome.synthesis is not None and outcome.synthesis.mode == "merge"
    assert [m.task_id for m in outcome.synthesis.missing] == [slow]
    assert any("merged without a model call" in n for n in outcome.synthesis.notes) == (mode == "auto")
