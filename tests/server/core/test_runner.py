"""The runner: the slots a task takes before it runs, and what an end means for the other tasks."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from server import (
    ErrorKind,
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
from server.backends import Traits
from server.backends.roster import Roster
from tests.server.fakes import ME, ScriptedBackend, gated

MakeSettings = Callable[..., Settings]


def on(backend: str, count: int) -> list[TaskRequest]:
    return [TaskRequest(task=f"{backend} {i}", backend=backend) for i in range(count)]


async def test_a_task_waiting_for_its_backends_own_bound_stays_queued_and_holds_no_server_slot(
    make_settings: MakeSettings,
) -> None:
    release = anyio.Event()
    bounded = ScriptedBackend(gated(release), name="bounded", traits=Traits(max_concurrency=2))
    free = ScriptedBackend(gated(release), name="free")
    roster = Roster({"bounded": bounded, "free": free}, default="bounded")
    async with open_registry(make_settings(max_concurrency=4), roster) as registry:
        receipt = await registry.spawn(SpawnRequest(tasks=[*on("bounded", 5), *on("free", 2)]), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await bounded.wait_calls(2)
            await free.wait_calls(2)
        await anyio.wait_all_tasks_blocked()
        bounded_counts, free_counts = registry.counts(ids[:5]), registry.counts(ids[5:])
        assert (bounded_counts.running, bounded_counts.queued, free_counts.running) == (2, 3, 2)
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)
    assert (bounded.max_in_flight, registry.counts(ids).completed) == (2, 7)


async def test_backends_that_share_one_traits_record_share_its_bound_and_equal_records_do_not(
    make_settings: MakeSettings,
) -> None:
    for shared in (True, False):
        release = anyio.Event()
        one = Traits(max_concurrency=2)
        other = one if shared else Traits(max_concurrency=2)
        first = ScriptedBackend(gated(release), name="first", traits=one)
        second = ScriptedBackend(gated(release), name="second", traits=other)
        roster = Roster({"first": first, "second": second}, default="first")
        async with open_registry(make_settings(), roster) as registry:
            receipt = await registry.spawn(SpawnRequest(tasks=[*on("first", 3), *on("second", 3)]), caller=ME)
            ids = [t.task_id for t in receipt.tasks]
            with anyio.fail_after(5):
                while first.in_flight + second.in_flight < (2 if shared else 4):
                    await anyio.wait_all_tasks_blocked()
                await anyio.wait_all_tasks_blocked()
            assert registry.counts(ids).running == (2 if shared else 4)
            release.set()
            with anyio.fail_after(5):
                await registry.wait(ids)


async def test_a_running_tasks_spend_ends_its_queued_siblings_as_soon_as_another_task_ends(
    make_settings: MakeSettings,
) -> None:
    both_run, spent, release = anyio.Event(), anyio.Event(), anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if "part 0" in request.prompt:
            await both_run.wait()
            sink.add_usage("claude-sonnet-5-5", Tokens(input_tokens=1_000_000))  # $2, and still running
            spent.set()
            await release.wait()
        else:
            both_run.set()
            await spent.wait()
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    request = SpawnRequest(
        tasks=[TaskRequest(task=f"part {i}") for i in range(4)], max_concurrency=2, budget_usd=1.0
    )
    async with open_registry(make_settings(), ScriptedBackend(handler)) as registry:
        ids = [t.task_id for t in (await registry.spawn(request, caller=ME)).tasks]
        with anyio.fail_after(5):
            await registry.wait(ids[1:2])  # part 1 ended while part 0, which spent the budget, runs on
        states = [s.state for s in registry.snapshots(ids)]
        assert states == [TaskState.RUNNING, TaskState.COMPLETED, TaskState.CANCELLED, TaskState.CANCELLED]
        assert all(s.error and s.error.kind is ErrorKind.BUDGET_EXCEEDED for s in registry.snapshots(ids[2:]))
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)
