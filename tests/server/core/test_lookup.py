"""Another principal's ids answer exactly as ids that never existed, in every registry call that takes
ids; ``list`` shows and counts only the caller's own tasks; an operator sees and cancels everything."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import anyio

from server import Caller, Settings, SpawnRequest, TaskRequest, TaskState, UnknownTask
from tests.server.engines import OpenEngine
from tests.server.fakes import ScriptedBackend, gated

MakeSettings = Callable[..., Settings]
ALICE, BOB, ROOT = Caller("alice"), Caller("bob"), Caller("root", operator=True)
NEVER = "t-neverexisted0000"


def spawn_of(n: int) -> SpawnRequest:
    return SpawnRequest(tasks=[TaskRequest(task=f"part {i}") for i in range(n)])


async def refusal(call: Callable[[str], object], named: str) -> str:
    """What ``call(named)`` raises (or the coroutine it returns), with ``named`` written as ``<id>``."""
    try:
        answer = call(named)
        if inspect.isawaitable(answer):
            await answer
    except UnknownTask as exc:
        return str(exc).replace(named, "<id>")
    raise AssertionError(f"{named} was not refused")


async def test_another_principals_ids_answer_as_unknown_ids_in_every_call(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async with open_engine(make_settings(), ScriptedBackend()) as registry:
        receipt = await registry.spawn(spawn_of(2), caller=ALICE)
        task_id, group_id = receipt.tasks[0].task_id, receipt.group_id
        by_task: list[Callable[[str], object]] = [
            lambda i: registry.select([i], None, caller=BOB),
            lambda i: registry.snapshot(i, caller=BOB),
            lambda i: registry.cancel([i], caller=BOB),
        ]
        by_group: list[Callable[[str], object]] = [
            lambda g: registry.select(None, g, caller=BOB),
            lambda g: registry.list(g, caller=BOB),
            # A group id given as a task id: the hint that it is a group's is for Alice alone.
            lambda g: registry.select([g], None, caller=BOB),
        ]

        for call in by_task:
            assert await refusal(call, task_id) == await refusal(call, NEVER)
        for call in by_group:
            assert await refusal(call, group_id) == await refusal(call, NEVER)
        assert "is a group id" in await refusal(lambda g: registry.select([g], None, caller=ALICE), group_id)
        assert await registry.select(None, group_id, caller=ALICE) == [t.task_id for t in receipt.tasks]


async def test_list_shows_and_counts_only_the_callers_tasks_and_an_operator_sees_all(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async with open_engine(make_settings(), ScriptedBackend(gated(anyio.Event()))) as registry:
        alices = await registry.spawn(spawn_of(2), caller=ALICE)
        bobs = await registry.spawn(spawn_of(3), caller=BOB)

        mine, theirs = await registry.list(caller=ALICE), await registry.list(caller=BOB)
        everyone = await registry.list(caller=ROOT)

        assert [s.task_id for s in mine.tasks] == [t.task_id for t in alices.tasks] and mine.total == 2
        assert [s.task_id for s in theirs.tasks] == [t.task_id for t in bobs.tasks] and theirs.total == 3
        assert everyone.total == 5 and len(everyone.tasks) == 5
        assert (await registry.list(caller=Caller("carol"))).total == 0


async def test_an_operator_cancels_another_principals_tasks(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    backend = ScriptedBackend(gated(anyio.Event()))
    async with open_engine(make_settings(), backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(2), caller=ALICE)).tasks]

        outcome = registry.cancel(await registry.select(ids, None, caller=ROOT), caller=ROOT)
        with anyio.fail_after(5):
            await registry.wait(ids)

        assert outcome.cancelled == ids
        assert registry.counts(ids).cancelled == 2
        assert registry.snapshot(ids[0], caller=ALICE).state is TaskState.CANCELLED
