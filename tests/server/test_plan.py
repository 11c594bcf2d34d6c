"""Plans run through the engine: the synthesis a plan asks for, over the fake Messages API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import anyio
import pytest

from fanout_mcp.server import Settings, TaskRequest, open_runtime
from fanout_mcp.server.plan import Plan, SynthesisOptions, run_plan
from tests.fake_api import FakeApi

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
