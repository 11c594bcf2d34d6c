"""A model synthesis: one call when the answers fit, a tree of calls when they do not, planned and read
in worker threads."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import TypeVar

import anyio
import pytest

from server import (
    InvalidInput,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskRequest,
    TaskSink,
    open_registry,
)
from server.backends.roster import Roster
from server.fanin import model_tasks
from server.fanin import synthesis as synthesis_module
from server.fanin.model_tasks import plan_model_synthesis
from server.fanin.report import split_answers
from server.fanin.synthesis import SynthesisDone, SynthesisPending, SynthesisRunning, Synthesizer
from server.intake.prepare import PlannedTask
from tests.answers import synthesis
from tests.gates import ThreadGate
from tests.server.fakes import ME, Handler, ScriptedBackend

MakeSettings = Callable[..., Settings]
T = TypeVar("T")


def answering(length: int) -> Handler:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        line = request.prompt.split("Task:\n", 1)[1].split("\n", 1)[0]
        text = "\n".join(f"{line} line {i} " + "x" * 40 for i in range(length // 50))
        return SubagentResult(text=text, model=request.model, stop_reason="end_turn")

    return handler


async def plan_for(
    make_settings: MakeSettings, answers: int, length: int, **settings: object
) -> tuple[list[PlannedTask], list[str]]:
    backend = ScriptedBackend(answering(length))
    configured = make_settings(**settings)
    async with open_registry(configured, backend) as registry:
        receipt = await registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task=f"t{i}") for i in range(answers)]), caller=ME
        )
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        answered, missing = split_answers(registry.snapshots(ids))
        return plan_model_synthesis(answered, missing, None, backend, configured), ids


async def test_answers_that_fit_get_one_synthesis_that_may_cite_them_all(make_settings: MakeSettings) -> None:
    planned, ids = await plan_for(make_settings, 3, 500)
    assert len(planned) == 1
    assert planned[0].spec.known_sources == frozenset(ids) and planned[0].spec.depends_on == ()
    assert all(f'task_id="{i}"' in planned[0].write_prompt() for i in ids)


async def test_too_much_for_one_call_becomes_a_tree_whose_leaves_hold_every_answer(
    make_settings: MakeSettings,
) -> None:
    planned, ids = await plan_for(
        make_settings, 8, 2_000, synthesis_input_chars=6_000, synthesis_max_tokens=250
    )
    leaves = [p for p in planned if not p.spec.depends_on]
    merges = [p for p in planned if p.spec.depends_on]
    assert len(leaves) >= 2 and merges
    final = planned[-1]
    assert final.spec.known_sources == frozenset(ids)
    reachable: set[int] = set()
    stack = [final.spec.index]
    while stack:
        node = planned[stack.pop()]
        reachable.add(node.spec.index)
        stack.extend(node.spec.depends_on)
    assert reachable == {p.spec.index for p in planned}  # one tree: the final task depends on everything
    for leaf in leaves:  # a leaf may cite only the answers it was given
        assert leaf.spec.known_sources and all(
            f'task_id="{i}"' in leaf.write_prompt() for i in leaf.spec.known_sources
        )
    for task_id in ids:
        assert any(f'task_id="{task_id}"' in leaf.write_prompt() for leaf in leaves)
    text = "".join(leaf.write_prompt() for leaf in leaves)  # every answer in full: each line is in some leaf
    for i in range(8):
        for line in range(40):
            assert f"t{i} line {line} " in text


async def while_held(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str, work: Callable[[], Awaitable[T]]
) -> T:
    """What ``work`` returns; meanwhile ``module.<name>`` is held in its thread, and this loop goes on."""
    done: list[T] = []

    async def run() -> None:
        done.append(await work())

    with ThreadGate(getattr(module, name)) as gate:
        monkeypatch.setattr(module, name, gate)
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await gate.entered()
            gate.open()
    return done[0]


async def test_a_model_synthesis_is_planned_and_read_in_worker_threads(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        text = json.dumps(synthesis("Done.")) if request.output_schema else "an answer"
        return SubagentResult(text=text, model=request.model, stop_reason="end_turn")

    settings, backend = make_settings(), ScriptedBackend(handler)
    async with open_registry(settings, backend) as registry:
        ids = [
            t.task_id
            for t in (await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="a")]), caller=ME)).tasks
        ]
        synth = Synthesizer(registry, settings, Roster.single(backend))
        with anyio.fail_after(5):
            planned = await while_held(
                monkeypatch, model_tasks, "_pieces", lambda: synth.synthesize(ids, "llm", caller=ME)
            )
            # Called again, it picks up the synthesis it started, and reads its answer again.
            read = await while_held(
                monkeypatch,
                synthesis_module,
                "from_structured",
                lambda: synth.synthesize(ids, "llm", caller=ME),
            )
    assert isinstance(planned, SynthesisDone) and isinstance(read, SynthesisDone)
    assert planned.synthesis.summary == read.synthesis.summary == "Done."
    assert read.task_id == planned.task_id and len(backend.calls) == 2  # the task, then one synthesis


async def look(task_ids: Sequence[str]) -> None:
    """A caller that does not wait: it takes the synthesis as far as it has got."""


async def test_a_model_synthesis_is_pending_until_every_task_ended_then_runs_once_then_is_done(
    make_settings: MakeSettings,
) -> None:
    slow, synthesizing = anyio.Event(), anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if request.output_schema:
            await synthesizing.wait()
            return SubagentResult(json.dumps(synthesis("Both.")), request.model, "end_turn")
        if "slow" in request.prompt:
            await slow.wait()
        return SubagentResult("an answer", request.model, "end_turn")

    settings, backend = make_settings(), ScriptedBackend(handler)
    async with open_registry(settings, backend) as registry:
        tasks = [TaskRequest(task="quick"), TaskRequest(task="slow")]
        ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks]
        synth = Synthesizer(registry, settings, Roster.single(backend))
        with anyio.fail_after(5):
            await backend.wait_calls(2)
            await registry.wait(ids[:1])
            pending = await synth.synthesize(ids, "llm", wait=look, caller=ME)
            assert pending == SynthesisPending(unfinished=1, sources=2, total_usage=registry.usage(ids))
            assert len(backend.calls) == 2  # no synthesis was started
            slow.set()
            await registry.wait(ids)
            running = await synth.synthesize(ids, "llm", wait=look, caller=ME)
            assert isinstance(running, SynthesisRunning)
            await backend.wait_calls(3)
            again = await synth.synthesize(ids, "llm", wait=look, caller=ME)
            assert again == running and len(backend.calls) == 3  # picked up, not started again
            synthesizing.set()
            done = await synth.synthesize(ids, "llm", caller=ME)  # waits for it
    assert isinstance(done, SynthesisDone) and done.task_id == running.task_id
    assert done.synthesis.mode == "llm" and done.synthesis.summary == "Both."


async def test_auto_merges_without_a_model_when_the_default_backend_cannot_run(
    make_settings: MakeSettings,
) -> None:
    settings, backend = make_settings(), ScriptedBackend()
    async with open_registry(settings, backend) as registry:
        ids = [
            t.task_id
            for t in (await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="a")]), caller=ME)).tasks
        ]
        backend.unavailable = "no key"
        with anyio.fail_after(5):
            answer = await Synthesizer(registry, settings, Roster.single(backend)).synthesize(ids, caller=ME)
    assert isinstance(answer, SynthesisDone) and answer.task_id is None
    assert answer.synthesis.mode == "merge" and len(backend.calls) == 1


async def test_a_quorum_below_one_is_refused_before_any_wait(make_settings: MakeSettings) -> None:
    async def never(task_ids: Sequence[str]) -> None:
        raise AssertionError("waited")

    settings, backend = make_settings(), ScriptedBackend()
    async with open_registry(settings, backend) as registry:
        synth = Synthesizer(registry, settings, Roster.single(backend))
        with pytest.raises(InvalidInput, match=r"quorum must be .* >= 1 \(got 0\)"):
            await synth.synthesize([], "merge", 0, wait=never, caller=ME)
