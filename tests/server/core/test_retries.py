"""retry: tasks that ended without an answer run again as one new spawn, each as its spawn asked for it,
under new ids that point to the old ones; dependencies are kept or follow the new copies."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from server import (
    Caller,
    ErrorKind,
    InvalidInput,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskFailure,
    TaskRegistry,
    TaskRequest,
    TaskSink,
    TaskState,
    UnknownTask,
    open_registry,
)
from server.core.records import from_json, group_from_json, to_json
from server.core.store import MemoryStore, Outcome
from tests.server.engines import OpenEngine, until
from tests.server.fakes import ScriptedBackend

MakeSettings = Callable[..., Settings]
SCHEMA = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}

ME = Caller.local()


def letter(request: SubagentRequest) -> str:
    """The first letter of the task (each test's tasks start with a distinct one)."""
    return request.prompt.split("Task:\n", 1)[1][0]


class Script:
    """A backend's behaviour per task letter: fail (once), hold until released, or answer."""

    def __init__(self) -> None:
        self.fail_once: set[str] = set()
        self.hold: dict[str, anyio.Event] = {}
        self.started: dict[str, anyio.Event] = {}
        self.prompts: dict[str, list[str]] = {}
        self.backend = ScriptedBackend(self.handle)

    async def handle(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        name = letter(request)
        self.prompts.setdefault(name, []).append(request.prompt)
        self.started.setdefault(name, anyio.Event()).set()
        sink.append("partial ")
        if name in self.fail_once:
            self.fail_once.discard(name)
            raise TaskFailure(ErrorKind.API_ERROR, "the provider broke")
        if name in self.hold:
            await self.hold[name].wait()
        return SubagentResult(
            text=f'{{"ok": true, "from": "{name}"}}', model=request.model, stop_reason="end_turn"
        )

    def calls(self, name: str) -> int:
        return len(self.prompts.get(name, []))


async def settled(registry: TaskRegistry, ids: list[str]) -> None:
    with anyio.fail_after(15):
        await registry.wait(ids)


async def test_failed_and_cancelled_tasks_run_again_under_new_ids_as_their_spawn_asked_for_them(
    make_settings: MakeSettings, tmp_path: Path, open_engine: OpenEngine
) -> None:
    (tmp_path / "notes.txt").write_text("first version\n")
    script = Script()
    script.fail_once.add("B")
    script.hold["C"] = anyio.Event()
    request = SpawnRequest(
        tasks=[
            TaskRequest(task="A: summarise", label="a"),
            TaskRequest(task="B: review", label="b", context="only the login", files=["notes.txt"]),
            TaskRequest(task="C: test", label="c", role="tester"),
        ],
        shared_context="A Flask app.",
        output_schema=SCHEMA,
        budget_usd=2.5,
        max_concurrency=2,
    )
    async with open_engine(make_settings(), script.backend) as registry:
        first = await registry.spawn(request, caller=ME)
        ids = [t.task_id for t in first.tasks]
        with anyio.fail_after(5):
            await script.started.setdefault("C", anyio.Event()).wait()
        registry.cancel([ids[2]], caller=ME)
        await settled(registry, ids)
        assert [s.state for s in registry.snapshots(ids)] == [
            TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED
        ]  # fmt: skip
        (tmp_path / "notes.txt").write_text("second version\n")
        script.hold["C"].set()

        again = await registry.retry(await registry.select(None, first.group_id, caller=ME), caller=ME)

        assert again.group_id != first.group_id
        assert [(t.label, t.retry_of) for t in again.tasks] == [("b", ids[1]), ("c", ids[2])]
        assert again.skipped[TaskState.COMPLETED] == [ids[0]]
        new_ids = [t.task_id for t in again.tasks]
        assert not set(new_ids) & set(ids)
        await settled(registry, new_ids)
        snaps = registry.snapshots(new_ids)
        assert [(s.state, s.structured, s.retry_of) for s in snaps] == [
            (TaskState.COMPLETED, {"ok": True, "from": "B"}, ids[1]),
            (TaskState.COMPLETED, {"ok": True, "from": "C"}, ids[2]),
        ]
        assert script.calls("A") == 1  # a completed task is not run again
        rerun_b = [call for call in script.backend.calls if letter(call) == "B"][-1]
        assert "second version" in rerun_b.prompt and "first version" not in rerun_b.prompt  # read again
        assert "only the login" in rerun_b.prompt
        assert "A Flask app." in rerun_b.system
        assert rerun_b.output_schema == SCHEMA
        assert "tester" in script.prompts["C"][-1]
        summary = registry.group_summary(again.group_id)
        assert (summary.tasks, summary.budget_usd, summary.spent_usd) == (2, 2.5, 0.0)  # a fresh budget
        assert all(s.backend == "scripted" for s in snaps)


async def test_completed_and_unfinished_tasks_are_left_and_said_and_nothing_to_run_again_is_refused(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    script = Script()
    script.fail_once.add("B")
    script.hold["C"] = anyio.Event()
    tasks = [TaskRequest(task=f"{name}: part") for name in "ABC"]
    async with open_engine(make_settings(), script.backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks]
        await settled(registry, ids[:2])
        with anyio.fail_after(5):
            await script.started.setdefault("C", anyio.Event()).wait()

        again = await registry.retry(ids, caller=ME)

        assert [t.retry_of for t in again.tasks] == [ids[1]]
        assert again.skipped == {
            TaskState.COMPLETED: [ids[0]],
            TaskState.QUEUED: [],
            TaskState.RUNNING: [ids[2]],
        }
        with pytest.raises(InvalidInput, match=r"nothing to run again: 1 completed .* and 1 still queued or"):
            await registry.retry([ids[0], ids[2]], caller=ME)
        with pytest.raises(UnknownTask, match="no task with id 't-nope'"):
            await registry.retry(["t-nope"], caller=ME)
        script.hold["C"].set()


async def test_a_rerun_gets_the_answer_of_a_completed_dependency_without_running_it_again(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    script = Script()
    script.fail_once.add("B")
    tasks = [
        TaskRequest(task="A: ground", label="a"),
        TaskRequest(task="B: build", label="b", depends_on=["a"]),
    ]
    async with open_engine(make_settings(), script.backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks]
        await settled(registry, ids)

        again = await registry.retry([ids[1]], caller=ME)
        await settled(registry, [again.tasks[0].task_id])

    assert script.calls("A") == 1
    assert '"from": "A"' in script.prompts["B"][-1]


async def test_a_rerun_that_depended_on_another_rerun_waits_for_the_new_copy(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    script = Script()
    script.fail_once.add("A")
    tasks = [
        TaskRequest(task="A: ground", label="a"),
        TaskRequest(task="B: build", label="b", depends_on=["a"]),
    ]
    async with open_engine(make_settings(), script.backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks]
        await settled(registry, ids)
        dependant = registry.snapshot(ids[1], caller=ME)
        assert dependant.error is not None and dependant.error.kind is ErrorKind.DEPENDENCY_FAILED
        script.hold["A"] = anyio.Event()
        script.started.pop("A")

        again = await registry.retry(await registry.select(None, dependant.group_id, caller=ME), caller=ME)
        new_a, new_b = (t.task_id for t in again.tasks)
        with anyio.fail_after(5):
            await script.started.setdefault("A", anyio.Event()).wait()
        await anyio.wait_all_tasks_blocked()
        assert registry.snapshot(new_b, caller=ME).state is TaskState.QUEUED  # waits for the new copy of A
        script.hold["A"].set()
        await settled(registry, [new_a, new_b])

    assert registry.snapshot(new_b, caller=ME).state is TaskState.COMPLETED
    assert script.calls("A") == 2 and script.calls("B") == 1


async def cancelled_while_its_dependency_runs(registry: TaskRegistry, script: Script) -> list[str]:
    """Spawn A (held once it runs) and B depending on it, and cancel B while A runs: a task to run again
    whose dependency outside the retry has not ended. Its ids."""
    script.hold["A"] = anyio.Event()
    tasks = [
        TaskRequest(task="A: ground", label="a"),
        TaskRequest(task="B: build", label="b", depends_on=["a"]),
    ]
    ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks]
    with anyio.fail_after(10):
        await script.started.setdefault("A", anyio.Event()).wait()
        registry.cancel(ids[1:], caller=ME)
        await until(registry, ids[1], lambda snap: snap.state is TaskState.CANCELLED, ME)
    return ids


async def test_a_rerun_whose_dependency_outside_it_still_runs_waits_for_its_answer(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    script = Script()
    async with open_engine(make_settings(), script.backend) as registry:
        ids = await cancelled_while_its_dependency_runs(registry, script)
        new_b = (await registry.retry(ids[1:], caller=ME)).tasks[0].task_id
        await anyio.wait_all_tasks_blocked()
        assert registry.snapshot(new_b, caller=ME).state is TaskState.QUEUED  # waits for A, still running
        script.hold["A"].set()
        await settled(registry, [ids[0], new_b])

    assert registry.snapshot(new_b, caller=ME).state is TaskState.COMPLETED
    assert script.calls("A") == 1 and '"from": "A"' in script.prompts["B"][-1]


async def test_a_rerun_cancelled_while_it_waits_for_a_dependency_outside_it_ends_and_never_runs(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    script = Script()
    async with open_engine(make_settings(), script.backend) as registry:
        ids = await cancelled_while_its_dependency_runs(registry, script)
        with anyio.fail_after(10):
            new_b = (await registry.retry(ids[1:], caller=ME)).tasks[0].task_id
            registry.cancel([new_b], caller=ME)
            await until(registry, new_b, lambda snap: snap.state is TaskState.CANCELLED, ME)
        script.hold["A"].set()
        await settled(registry, [ids[0]])

    assert registry.snapshot(ids[0], caller=ME).state is TaskState.COMPLETED
    assert script.calls("B") == 0


async def test_a_rerun_whose_dependency_ended_without_an_answer_and_is_not_run_again_is_refused(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    script = Script()
    script.fail_once.add("A")
    tasks = [
        TaskRequest(task="A: ground", label="a"),
        TaskRequest(task="B: build", label="b", depends_on=["a"]),
    ]
    async with open_engine(make_settings(), script.backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks]
        await settled(registry, ids)

        with pytest.raises(InvalidInput, match=r"depends on 'a' .* ended failed .* add its id to task_ids"):
            await registry.retry([ids[1]], caller=ME)
        script.fail_once.add("C")
        other = await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="C: x")]), caller=ME)
        await settled(registry, [other.tasks[0].task_id])
        with pytest.raises(InvalidInput, match="come from 2 spawns"):
            await registry.retry([ids[0], other.tasks[0].task_id], caller=ME)


def reopened(store: MemoryStore, group_id: str, partial: dict[str, str]) -> MemoryStore:
    """What a durable store holds once the process that wrote it died, read by a new process: the
    group's records as written out (JSON) and read back, its finished tasks as they ended, and its
    unfinished ones (with the partial output it flushed, ``partial``) moved to interrupted."""
    group = store.group(group_id)
    assert group is not None
    saved = [to_json(record) for task_id in group.task_ids if (record := store.task(task_id))]
    again = MemoryStore()
    records = [from_json(data) for data in saved]
    ended = {record.id: record.state for record in records}
    for record in records:
        record.state = TaskState.QUEUED  # a store adds a spawn's tasks queued, then replays their moves
    again.put(group_from_json(to_json(group)), records)
    for record in records:
        if ended[record.id] is TaskState.COMPLETED:
            outcome = Outcome(record.output, None, "end_turn", record.model, None, None, 1, time.time())
            again.move(record.id, TaskState.RUNNING, 0.0)
            again.move(record.id, TaskState.COMPLETED, 1.0, outcome)
        elif record.id in partial:
            again.move(record.id, TaskState.RUNNING, 0.0)
            record.output = partial[record.id]
            again.interrupt(record.id, "its server process ended", 2.0)
        else:
            again.interrupt(record.id, "its server process ended", 2.0)
    return again


async def test_tasks_interrupted_when_their_process_died_run_again_in_a_new_one(
    make_settings: MakeSettings,
) -> None:
    tasks = [
        TaskRequest(task="A: ground", label="a"),
        TaskRequest(task="B: build", label="b", depends_on=["a"]),
        TaskRequest(task="C: check", label="c"),
        TaskRequest(task="D: document", label="d", depends_on=["b"]),
    ]
    first = Script()
    first.hold["B"] = first.hold["C"] = anyio.Event()
    async with open_registry(make_settings(), first.backend, store=(old := MemoryStore())) as registry:
        receipt = await registry.spawn(SpawnRequest(tasks=tasks, shared_context="The repo."), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await first.backend.wait_calls(3)  # A completed; B and C run; D waits for B
        partial = {
            ids[1]: registry.snapshot(ids[1], caller=ME).output or "",
            ids[2]: registry.snapshot(ids[2], caller=ME).output or "",
        }
        store = reopened(old, receipt.group_id, partial)  # as the store stood when its process died

    kept = store.group(receipt.group_id)
    assert kept is not None and json.loads(to_json(kept))["request"]["shared_context"] == "The repo."
    second = Script()
    async with open_registry(make_settings(), second.backend, store=store) as registry:
        listed = await registry.list(state=TaskState.INTERRUPTED, caller=ME)
        assert [s.task_id for s in listed.tasks] == ids[1:]
        assert (listed.counts.interrupted, (await registry.list(caller=ME)).counts.completed) == (3, 1)
        running_then = registry.snapshot(ids[1], caller=ME)
        assert (running_then.output, running_then.partial) == ("partial ", True)
        assert running_then.note == "its server process ended"

        again = await registry.retry(await registry.select(None, receipt.group_id, caller=ME), caller=ME)
        new_ids = [t.task_id for t in again.tasks]
        assert [t.retry_of for t in again.tasks] == ids[1:]
        await settled(registry, new_ids)
        assert [s.state for s in registry.snapshots(new_ids)] == [TaskState.COMPLETED] * 3

    assert second.calls("A") == 0  # its answer, kept by the store, is given to B again
    assert '"from": "A"' in second.prompts["B"][0] and '"from": "B"' in second.prompts["D"][0]
    assert all("The repo." in call.system for call in second.backend.calls)
