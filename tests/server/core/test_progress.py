"""A running task's progress: what its backend reports, and nothing once the task has ended."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from server import (
    ErrorKind,
    RetryNotice,
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
from server.config.pricing import PriceTable
from server.core.progress import Progress
from tests.server.fakes import ME, ScriptedBackend

MakeSettings = Callable[..., Settings]


async def test_a_backend_that_reports_after_its_task_ended_changes_nothing(
    make_settings: MakeSettings,
) -> None:
    sinks: list[TaskSink] = []

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sinks.append(sink)
        sink.add_usage("claude-sonnet-5-5", Tokens(input_tokens=1_000_000))
        sink.append("the answer")
        return SubagentResult(text="the answer", model=request.model, stop_reason="end_turn")

    heard: list[RetryNotice] = []
    async with open_registry(make_settings(), ScriptedBackend(handler)) as registry:
        registry.on_retry(heard.append)
        receipt = await registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task="x")], budget_usd=10.0), caller=ME
        )
        task_id = receipt.tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        before = (registry.snapshot(task_id, caller=ME), registry.group_summary(receipt.group_id))
        (late,) = sinks
        late.add_usage("claude-sonnet-5-5", Tokens(input_tokens=1_000_000))
        late.restart("rate limited (429); retrying in 1.0 s (attempt 2)", ErrorKind.RATE_LIMITED)
        late.status("still here")
        late.append(" and more")
        late.response_started()
        after = (registry.snapshot(task_id, caller=ME), registry.group_summary(receipt.group_id))
    assert before == after
    assert before[0].state is TaskState.COMPLETED and before[1].spent_usd == 2.0
    assert heard == []


def test_a_calls_usage_so_far_stays_unsettled_and_priced_until_the_call_counts_it_whole() -> None:
    counted: list[Tokens] = []
    prices = PriceTable.load(None)
    progress = Progress(
        "t-1", "g-1", "one", prices=prices, record_usage=lambda _t, tokens, _c: counted.append(tokens),
        on_retry=lambda _notice: None,
    )  # fmt: skip
    assert progress.unsettled() is None
    started = Tokens(input_tokens=1_000, output_tokens=1)
    progress.usage_so_far("claude-sonnet-5-5", started)
    assert progress.unsettled() == (started, prices.cost("claude-sonnet-5-5", started)) and not counted
    progress.add_usage("claude-sonnet-5-5", Tokens(input_tokens=1_000, output_tokens=200))
    assert progress.unsettled() is None and counted == [Tokens(input_tokens=1_000, output_tokens=200)]
    progress.close()
    progress.usage_so_far("claude-sonnet-5-5", started)  # after its end: nothing
    assert progress.unsettled() is None
