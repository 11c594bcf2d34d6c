"""Plans through the engine: the synthesis a plan asks for, and a plan stopped part-way (what finished
is kept, what did not is cancelled, and no model is called)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import anyio
import pytest

from server import (
    Settings,
    SubagentRequest,
    SubagentResult,
    TaskRequest,
    TaskSink,
    TaskState,
    open_runtime,
)
from server.app.plan import Plan, SynthesisOptions, run_plan, start_plan, stop_plan
from tests.fake_api import FakeApi
from tests.server.fakes import ScriptedBackend

MakeSettings = Callable[..., Settings]


@pytest.mark.parametrize("mode", ["auto", "llm"])
async def test_a_plan_whose_tasks_all_failed_asks_no_model_to_synthesize_them(
    fake_api: FakeApi, make_settings: MakeSettings, mode: Literal["auto", "llm"]
) -> None:
    plan = Plan(
        tasks=[
            TaskRequest(task="[[fail:400;message=prompt is too long]]", label="big"),
            TaskRequest(task="[[fail:404;message=model: nope]]", label="odd model"),
        ],
        synthesis=SynthesisOptions(mode=mode),
    )
    async with open_runtime(make_settings()) as runtime:
        with anyio.fail_after(20):
            outcome = await run_plan(runtime, plan)
    synthesis = outcome.synthesis
    assert synthesis is not None and synthesis.mode == "merge"
    assert synthesis.summary.startswith("Nothing to synthesize: none of the 2 task(s) has an answer")
    assert [(m.label, m.reason.split(":")[0]) for m in synthesis.missing] == [
        ("big", "invalid_input"),
        ("odd model", "invalid_input"),
    ]
    assert len(fake_api.requests) == 2  # the tasks' own; no synthesis request


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
