"""depends_on: a diamond runs its middle in parallel, failures propagate, cycles are refused; on both
executors (``open_engine``)."""

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
    TaskFailure,
    TaskRequest,
    TaskSink,
    TaskState,
)
from tests.server.engines import OpenEngine
from tests.server.fakes import ME, ScriptedBackend

MakeSettings = Callable[..., Settings]

DIAMOND = [
    TaskRequest(task="A: lay the ground", label="a"),
    TaskRequest(task="B: left", label="b", depends_on=["a"]),
    TaskRequest(task="C: right", label="c", depends_on=[0]),
    TaskRequest(task="D: join", label="d", depends_on=["b", "c"]),
]


def task_letter(request: SubagentRequest) -> str:
    return request.prompt.split("Task:\n", 1)[1][0]


async def test_a_diamond_runs_its_middle_in_parallel_and_the_join_gets_both_answers(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    both_middle_running = anyio.Event()
    in_middle: set[str] = set()
    prompts: dict[str, str] = {}

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        letter = task_letter(request)
        prompts[letter] = request.prompt
        if letter in "BC":
            in_middle.add(letter)
            if in_middle == {"B", "C"}:
                both_middle_running.set()
            await both_middle_running.wait()  # neither finishes until both are running: proves parallelism
        return SubagentResult(text=f"answer of {letter}", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler)
    async with open_engine(make_settings(), backend) as registry:
        receipt = await registry.spawn(SpawnRequest(tasks=DIAMOND), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        snaps = registry.snapshots(ids)
    assert [s.state for s in snaps] == [TaskState.COMPLETED] * 4
    order = [task_letter(call) for call in backend.calls]
    assert (order[0], order[-1]) == ("A", "D")
    assert backend.max_in_flight == 2
    join = prompts["D"]
    assert f'<result task_id="{ids[1]}" label="b">\nanswer of B\n</result>' in join
    assert f'<result task_id="{ids[2]}" label="c">\nanswer of C\n</result>' in join
    assert "answer of A" not in join  # only direct dependencies are handed on
    assert "answer of A" in prompts["B"] and "answer of A" in prompts["C"]


async def test_a_failed_dependency_fails_everything_downstream_without_running_it(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        raise TaskFailure(ErrorKind.API_ERROR, "A broke")

    backend = ScriptedBackend(handler)
    async with open_engine(make_settings(), backend) as registry:
        receipt = await registry.spawn(SpawnRequest(tasks=DIAMOND), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        snaps = registry.snapshots(ids)
    assert [s.state for s in snaps] == [TaskState.FAILED] * 4
    assert snaps[0].error is not None and snaps[0].error.kind is ErrorKind.API_ERROR
    for snap in snaps[1:]:
        assert snap.error is not None and snap.error.kind is ErrorKind.DEPENDENCY_FAILED
    assert snaps[1].error is not None and f"'a' ({ids[0]})" in snaps[1].error.message
    assert snaps[3].error is not None and f"'b' ({ids[1]})" in snaps[3].error.message
    assert len(backend.calls) == 1 and snaps[1].elapsed_s is None


async def test_a_cancelled_dependency_fails_its_dependants(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    gate = anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        await gate.wait()
        return SubagentResult(text="x", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler)
    async with open_engine(make_settings(), backend) as registry:
        receipt = await registry.spawn(SpawnRequest(tasks=DIAMOND[:2]), caller=ME)
        first, second = (t.task_id for t in receipt.tasks)
        with anyio.fail_after(5):
            await backend.wait_calls(1)
        registry.cancel([first], caller=ME)
        with anyio.fail_after(5):
            await registry.wait([first, second])
        snap = registry.snapshot(second, caller=ME)
    assert snap.error is not None and snap.error.kind is ErrorKind.DEPENDENCY_FAILED
    assert "cancelled" in snap.error.message


async def test_independent_tasks_start_at_once_beside_a_chain(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        await release.wait()
        return SubagentResult(text="x", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler)
    tasks = [
        TaskRequest(task="A", label="a"),
        TaskRequest(task="B", depends_on=["a"]),
        TaskRequest(task="C"),
        TaskRequest(task="D"),
    ]
    async with open_engine(make_settings(), backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks]
        with anyio.fail_after(5):
            await backend.wait_calls(3)
        await anyio.wait_all_tasks_blocked()
        assert sorted(task_letter(c) for c in backend.calls) == ["A", "C", "D"]
        assert registry.snapshot(ids[1], caller=ME).state is TaskState.QUEUED
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            [
                TaskRequest(task="x", label="a", depends_on=["c"]),
                TaskRequest(task="y", label="b", depends_on=["a"]),
                TaskRequest(task="z", label="c", depends_on=["b"]),
            ],
            "cycle: 'a' needs 'c' needs 'b' needs 'a'",
        ),
        ([TaskRequest(task="x", label="a", depends_on=["a"])], "cycle: 'a' needs 'a'"),
        ([TaskRequest(task="x", depends_on=["nope"])], "no task of this spawn has that label"),
        ([TaskRequest(task="x", depends_on=[3])], "positions run from 0 to 0"),
        (
            [
                TaskRequest(task="x", label="a"),
                TaskRequest(task="y", label="a"),
                TaskRequest(task="z", depends_on=["a"]),
            ],
            "2 tasks have that label",
        ),
    ],
)
async def test_bad_dependencies_refuse_the_whole_spawn(
    make_settings: MakeSettings, open_engine: OpenEngine, tasks: list[TaskRequest], message: str
) -> None:
    backend = ScriptedBackend()
    async with open_engine(make_settings(), backend) as registry:
        with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
            await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)
        assert (await registry.list(caller=ME)).total == 0


async def test_a_dependant_fails_as_soon_as_one_dependency_fails(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    slow = anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if task_letter(request) == "A":
            raise TaskFailure(ErrorKind.API_ERROR, "A broke")
        await slow.wait()  # B never finishes unless told
        return SubagentResult(text="B", model=request.model, stop_reason="end_turn")

    tasks = [
        TaskRequest(task="A"),
        TaskRequest(task="B"),
        TaskRequest(task="C", depends_on=["task 1", "task 2"]),
    ]
    async with open_engine(make_settings(), ScriptedBackend(handler)) as registry:
        first, _, joined = (
            t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks
        )
        with anyio.fail_after(5):
            await registry.wait([first, joined])  # C fails while B is still running
        snap = registry.snapshot(joined, caller=ME)
        assert snap.error is not None and snap.error.kind is ErrorKind.DEPENDENCY_FAILED
        slow.set()
