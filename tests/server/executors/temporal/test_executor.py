"""The Temporal executor under the real runtime: front ends (registries on a ``TemporalStore``) and
workers on one real Temporal dev server, the workers' backends on the fake Messages API. Several front
ends in one event loop: to Temporal, each is a replica of its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from server import (
    Caller,
    Settings,
    SpawnRequest,
    TaskRequest,
    TaskSnapshot,
    TaskState,
    UnknownTask,
)
from server.app.runtime import open_runtime
from server.executors.temporal import wire
from server.executors.temporal.connection import data_converter
from server.executors.temporal.payloads import payload_dir
from server.executors.temporal.workflows import STARTS_PER_STEP, FanoutGroup
from server.fanin.synthesis import SynthesisDone
from tests.answers import reply, synthesis
from tests.fake_api import FakeApi
from tests.server.engines import until
from tests.temporal_dev import DevServer

MakeSettings = Callable[..., Settings]
ME = Caller.local()
ALICE, BOB = Caller("alice"), Caller("bob")


def same(snapshots: list[TaskSnapshot]) -> list[dict[str, Any]]:
    return [s.model_dump(exclude={"elapsed_s"}) for s in snapshots]


async def test_a_group_spawned_on_one_front_end_is_read_and_cancelled_on_another(
    fake_api: FakeApi, on_temporal: Callable[..., Settings]
) -> None:
    async with open_runtime(on_temporal(worker=True)) as one, open_runtime(on_temporal()) as two:
        tasks = [TaskRequest(task="[[hold:after=2]] a long one", label="long"), TaskRequest(task="short")]
        receipt = await one.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)
        ids = [task.task_id for task in receipt.tasks]
        assert await two.registry.select(None, receipt.group_id, caller=ME) == ids
        with anyio.fail_after(30):
            await two.registry.wait(ids[1:])
        with anyio.fail_after(30):
            running = await until(
                two.registry, ids[0], lambda s: s.state is TaskState.RUNNING and bool(s.output), ME
            )
        assert running.partial and running.output

        outcome = two.registry.cancel(ids[:1], "stop it", caller=ME)
        assert outcome.cancelled == ids[:1]
        with anyio.fail_after(30):
            await one.registry.wait(ids)
            await two.registry.wait(ids)
        await one.registry.select(None, receipt.group_id, caller=ME)
        cancelled = one.registry.snapshot(ids[0], caller=ME)
        assert (cancelled.state, cancelled.note, cancelled.output) == (
            TaskState.CANCELLED,
            "stop it",
            running.output,
        )
        short = one.registry.snapshot(ids[1], caller=ME)
        assert short.state is TaskState.COMPLETED and short.output and short.usage.output_tokens > 0
        assert same(two.registry.snapshots(ids)) == same(one.registry.snapshots(ids))
        assert two.registry.group_summary(receipt.group_id) == one.registry.group_summary(receipt.group_id)
        assert fake_api.stats().held == 0  # the cancelled call was let go at the provider too


async def test_a_dependency_diamond_runs_in_order_each_task_given_the_answers_it_depends_on(
    fake_api: FakeApi, on_temporal: Callable[..., Settings]
) -> None:
    diamond = [
        TaskRequest(task="A: start", label="a"),
        TaskRequest(task="B: left", label="b", depends_on=["a"]),
        TaskRequest(task="C: right", label="c", depends_on=["a"]),
        TaskRequest(task="D: join", label="d", depends_on=["b", "c"]),
    ]
    async with open_runtime(on_temporal(worker=True)) as runtime:
        receipt = await runtime.registry.spawn(SpawnRequest(tasks=diamond), caller=ME)
        ids = [task.task_id for task in receipt.tasks]
        with anyio.fail_after(60):
            await runtime.registry.wait(ids)
        await runtime.registry.select(ids, None, caller=ME)
        snaps = runtime.registry.snapshots(ids)
    assert [s.state for s in snaps] == [TaskState.COMPLETED] * 4
    prompts = [json.dumps(r.body) for r in fake_api.requests if r.path == "/v1/messages"]
    assert len(prompts) == 4
    order = {label: next(n for n, p in enumerate(prompts) if f"{label}: " in p) for label in "ABCD"}
    assert order["A"] < min(order["B"], order["C"]) and max(order["B"], order["C"]) < order["D"]
    join = prompts[order["D"]]
    assert ids[1] in join and ids[2] in join and ids[0] not in join  # its own dependencies' answers only


async def test_another_principals_group_answers_on_every_front_end_as_one_that_never_existed(
    fake_api: FakeApi, on_temporal: Callable[..., Settings]
) -> None:
    async with open_runtime(on_temporal(worker=True)) as one, open_runtime(on_temporal()) as two:
        receipt = await one.registry.spawn(SpawnRequest(tasks=[TaskRequest(task="mine")]), caller=ALICE)
        task_id = receipt.tasks[0].task_id
        for registry in (one.registry, two.registry):
            with pytest.raises(UnknownTask) as seen:
                await registry.select([task_id], None, caller=BOB)
            assert task_id in str(seen.value)
            with pytest.raises(UnknownTask):
                await registry.select(None, receipt.group_id, caller=BOB)
            assert (await registry.list(caller=BOB)).total == 0
        with anyio.fail_after(30):
            done = await until(two.registry, task_id, lambda s: s.state.terminal, caller=ALICE)
        assert done.state is TaskState.COMPLETED
        assert [s.task_id for s in (await two.registry.list(caller=ALICE)).tasks] == [task_id]


async def test_a_spawn_of_a_hundred_tasks_runs_and_another_front_end_reads_any_task_by_its_id_alone(
    fake_api: FakeApi, on_temporal: Callable[..., Settings]
) -> None:
    tasks = [TaskRequest(task=f"part {n} [[reply:answer {n}]]") for n in range(100)]
    async with open_runtime(on_temporal(worker=True)) as one, open_runtime(on_temporal()) as two:
        receipt = await one.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)
        ids = [task.task_id for task in receipt.tasks]
        assert (
            await two.registry.select(ids[-1:], None, caller=ME) == ids[-1:]
        )  # at once: no index to wait for
        with anyio.fail_after(120):
            await two.registry.wait(ids[-1:])
        await two.registry.select(ids[-1:], None, caller=ME)
        assert two.registry.snapshot(ids[-1], caller=ME).output == "answer 99"
        with anyio.fail_after(120):
            await one.registry.wait(ids)
        assert one.registry.counts(ids).completed == 100


async def test_a_group_whose_workflow_an_operator_terminates_ends_its_unfinished_tasks_interrupted(
    fake_api: FakeApi, on_temporal: Callable[..., Settings], temporal_server: DevServer
) -> None:
    async with open_runtime(on_temporal(worker=True)) as runtime:
        receipt = await runtime.registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task="[[hold]] stuck")]), caller=ME
        )
        task_id = receipt.tasks[0].task_id
        assert await anyio.to_thread.run_sync(fake_api.wait_held, 1, 30)
        terminate = [temporal_server.cli, "workflow", "terminate", "--workflow-id", receipt.group_id]
        await anyio.run_process([*terminate, "--address", temporal_server.address, "--reason", "test"])
        with anyio.fail_after(30):
            await runtime.registry.wait([task_id])
        snap = runtime.registry.snapshot(task_id, caller=ME)
    assert (snap.state, snap.note) == (TaskState.INTERRUPTED, "its workflow ended terminated in Temporal")


async def test_a_model_synthesis_asked_on_one_front_end_is_picked_up_on_another_not_paid_again(
    fake_api: FakeApi, on_temporal: Callable[..., Settings]
) -> None:
    tasks = [TaskRequest(task="[[reply:left]]"), TaskRequest(task="[[reply:right]]")]
    async with open_runtime(on_temporal(worker=True)) as one, open_runtime(on_temporal()) as two:
        ids = [
            task.task_id for task in (await one.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks
        ]
        instructions = reply(synthesis("Both sides.", ids))
        await two.registry.select(ids, None, caller=ME)
        with anyio.fail_after(60):
            done = await two.synthesizer.synthesize(ids, "llm", instructions=instructions, caller=ME)
        assert isinstance(done, SynthesisDone) and done.synthesis.summary == "Both sides."
        await one.registry.select(ids, None, caller=ME)
        with anyio.fail_after(60):
            again = await one.synthesizer.synthesize(ids, "llm", instructions=instructions, caller=ME)
    assert isinstance(again, SynthesisDone) and again.task_id == done.task_id
    assert again.synthesis.summary == "Both sides."
    assert len([r for r in fake_api.requests if r.path == "/v1/messages"]) == 3  # two tasks, one synthesis


async def test_a_read_of_a_running_group_carries_only_the_tasks_the_reader_has_not_seen_end(
    fake_api: FakeApi, on_temporal: Callable[..., Settings], temporal_server: DevServer
) -> None:
    async with open_runtime(on_temporal(worker=True)) as runtime:
        tasks = [TaskRequest(task="[[hold]] a long one"), TaskRequest(task="[[reply:short]]")]
        receipt = await runtime.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)
        ids = [task.task_id for task in receipt.tasks]
        with anyio.fail_after(30):
            await runtime.registry.wait(ids[1:])
        handle = (await Client.connect(temporal_server.address)).get_workflow_handle(receipt.group_id)
        whole = await handle.query("view", wire.ViewAsk(ended_seen=0), result_type=wire.GroupView)
        fresh = await handle.query("view", wire.ViewAsk(ended_seen=1), result_type=wire.GroupView)
        fake_api.release()
        with anyio.fail_after(30):
            await runtime.registry.wait(ids)
    assert ([task.task_id for task in whole.tasks], whole.ended) == (ids, 1)
    assert ([task.task_id for task in fresh.tasks], fresh.ended) == (ids[:1], 1)  # the answer not again


async def test_a_spawn_asks_for_its_activities_a_bounded_wave_a_workflow_step_and_replays_the_same(
    fake_api: FakeApi, on_temporal: Callable[..., Settings], temporal_server: DevServer
) -> None:
    count = STARTS_PER_STEP * 2 + 50
    tasks = [TaskRequest(task=f"part {n} [[reply:answer {n}]]") for n in range(count)]
    settings = on_temporal(worker=True, max_tasks_per_spawn=count)
    async with open_runtime(settings) as runtime:
        receipt = await runtime.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)
        ids = [task.task_id for task in receipt.tasks]
        with anyio.fail_after(180):
            await runtime.registry.wait(ids)
        assert runtime.registry.counts(ids).completed == count
    converter = data_converter(payload_dir(settings))
    client = await Client.connect(temporal_server.address, data_converter=converter)
    history = await client.get_workflow_handle(receipt.group_id).fetch_history()
    asked = asked_for_a_step(history)
    # a step the cluster failed is asked again, so the waves' edges may move; their size may not
    assert (max(asked), sum(asked)) == (STARTS_PER_STEP, count)
    await Replayer(workflows=[FanoutGroup], data_converter=client.data_converter).replay_workflow(history)


def asked_for_a_step(history: WorkflowHistory) -> list[int]:
    """How many activities each of the history's workflow steps asked for."""
    asked = [0]
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            asked.append(0)
        asked[-1] += event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    return asked


async def test_a_group_keeps_no_more_activities_pending_than_its_cap_and_runs_the_rest_as_they_end(
    fake_api: FakeApi,
    on_temporal: Callable[..., Settings],
    temporal_server: DevServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire, "MAX_PENDING", 3)  # Temporal's own limit is 2,000 a workflow
    tasks = [TaskRequest(task=f"[[hold]] part {n}") for n in range(6)]
    async with open_runtime(on_temporal(worker=True)) as runtime:
        receipt = await runtime.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)
        ids = [task.task_id for task in receipt.tasks]
        assert await anyio.to_thread.run_sync(fake_api.wait_held, 3, 30)
        handle = (await Client.connect(temporal_server.address)).get_workflow_handle(receipt.group_id)
        pending = (await handle.describe()).raw_description.pending_activities
        fake_api.release()
        with anyio.fail_after(60):
            await runtime.registry.wait(ids)
        assert runtime.registry.counts(ids).completed == 6
    assert len(pending) == 3
