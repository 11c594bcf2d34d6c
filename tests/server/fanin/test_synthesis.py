"""Planning a model synthesis: one call when the answers fit, a tree of calls when they do not."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest

from server import (
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskRequest,
    TaskSink,
    open_registry,
)
from server.backends.roster import Roster
from server.fanin import synthesis as synthesis_module
from server.fanin.report import split_answers
from server.fanin.synthesis import Synthesizer
from tests.answers import synthesis
from tests.gates import ThreadGate
from tests.server.fakes import ScriptedBackend

MakeSettings = Callable[..., Settings]
T = TypeVar("T")


def answering(length: int) -> Callable[[SubagentRequest, TaskSink], object]:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        line = request.prompt.split("Task:\n", 1)[1].split("\n", 1)[0]
        text = "\n".join(f"{line} line {i} " + "x" * 40 for i in range(length // 50))
        return SubagentResult(text=text, model=request.model, stop_reason="end_turn")

    return handler


async def plan_for(
    make_settings: MakeSettings, answers: int, length: int, **settings: object
) -> tuple[list, list[str]]:
    backend = ScriptedBackend(answering(length))  # type: ignore[arg-type]
    config, roster = make_settings(**settings), Roster.single(backend)
    async with open_registry(config, roster) as registry:
        receipt = await registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task=f"t{i}") for i in range(answers)])
        )
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        answered, missing = split_answers(registry.snapshots(ids))
        return Synthesizer(registry, config, roster)._plan(answered, missing, None, roster.choose(None)), ids


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


async def while_held(monkeypatch: pytest.MonkeyPatch, name: str, work: Callable[[], Awaitable[T]]) -> T:
    """What ``work`` returns; meanwhile ``synthesis.<name>`` is held in its thread, and this loop goes on."""
    done: list[T] = []

    async def run() -> None:
        done.append(await work())

    with ThreadGate(getattr(synthesis_module, name)) as gate:
        monkeypatch.setattr(synthesis_module, name, gate)
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

    config, roster = make_settings(), Roster.single(ScriptedBackend(handler))
    async with open_registry(config, roster) as registry:
        ids = [t.task_id for t in (await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="a")]))).tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        synth = Synthesizer(registry, config, roster)
        final = await while_held(monkeypatch, "_pieces", lambda: synth.start_llm(ids, None))
        with anyio.fail_after(5):
            await registry.wait([final])
        result = await while_held(monkeypatch, "from_structured", lambda: synth.result(final, ids))
    assert result is not None and result.summary == "Done."
