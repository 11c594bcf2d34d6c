"""Output schemas: built-ins, checking a caller's schema, parsing and validating answers, one repair."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from server import (
    ErrorKind,
    InvalidInput,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskRequest,
    TaskSink,
    TaskSnapshot,
    TaskState,
    open_registry,
)
from server.intake import answer_schemas as outputs
from server.intake.answer_schemas import FINDINGS_SCHEMA, check_answer, resolve_schema
from tests.gates import ThreadGate
from tests.server.fakes import ME, Handler, ScriptedBackend

MakeSettings = Callable[..., Settings]

FINDING = {
    "title": "SQL injection in login",
    "severity": "high",
    "location": {"path": "src/auth.py", "start_line": 42, "end_line": 44},
    "detail": "the query is built with an f-string",
    "recommendation": "use a parameterised query",
    "confidence": 0.9,
}


def test_the_builtin_findings_schema_is_found_by_name_and_unknown_names_are_refused() -> None:
    assert resolve_schema("findings") is FINDINGS_SCHEMA
    with pytest.raises(InvalidInput, match=r"not a built-in schema.*'findings'"):
        resolve_schema("report")


def test_a_caller_schema_must_be_valid_json_schema_of_an_object() -> None:
    assert resolve_schema({"type": "object", "properties": {"n": {"type": "integer"}}})["type"] == "object"
    with pytest.raises(InvalidInput, match="not a valid JSON Schema"):
        resolve_schema({"type": "object", "properties": {"n": {"type": "whole number"}}})
    with pytest.raises(InvalidInput, match="must describe a JSON object"):
        resolve_schema({"type": "array"})


def test_answers_are_parsed_bare_or_fenced_and_validated() -> None:
    bare = json.dumps({"findings": [FINDING]})
    assert check_answer(bare, FINDINGS_SCHEMA) == ({"findings": [FINDING]}, None)
    fenced = f"Here you go:\n```json\n{bare}\n```\n"
    assert check_answer(fenced, FINDINGS_SCHEMA)[0] == {"findings": [FINDING]}
    value, problem = check_answer("no json here", FINDINGS_SCHEMA)
    assert value is None and problem is not None and "not JSON" in problem
    wrong = json.dumps({"findings": [{**FINDING, "severity": "urgent", "confidence": 7}]})
    value, problem = check_answer(wrong, FINDINGS_SCHEMA)
    assert value is None and problem is not None
    assert "$.findings[0].confidence" in problem and "$.findings[0].severity" in problem


def test_cited_sources_must_be_known() -> None:
    schema = {"type": "object", "properties": {"points": {"type": "array"}}}
    answer = json.dumps({"points": [{"sources": ["t-1", "t-9"]}]})
    assert check_answer(answer, schema, {"t-1", "t-9"})[1] is None
    value, problem = check_answer(answer, schema, {"t-1"})
    assert value is None and problem is not None and "t-9" in problem


def replies(*texts: str) -> Handler:
    answers = list(texts)

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        return SubagentResult(text=answers.pop(0), model=request.model, stop_reason="end_turn")

    return handler


async def run_one(make_settings: MakeSettings, backend: ScriptedBackend, task: TaskRequest) -> TaskSnapshot:
    async with open_registry(make_settings(), backend) as registry:
        task_id = (await registry.spawn(SpawnRequest(tasks=[task]), caller=ME)).tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        return registry.snapshot(task_id, caller=ME)


async def test_a_valid_answer_comes_back_parsed(make_settings: MakeSettings) -> None:
    backend = ScriptedBackend(replies(json.dumps({"findings": [FINDING]})))
    snap = await run_one(make_settings, backend, TaskRequest(task="review", output_schema="findings"))
    assert snap.state is TaskState.COMPLETED
    assert snap.structured == {"findings": [FINDING]}
    assert backend.calls[0].output_schema is FINDINGS_SCHEMA
    assert (
        '"findings"' in backend.calls[0].prompt and "Answer with only a JSON value" in backend.calls[0].prompt
    )


async def test_an_invalid_answer_gets_one_repair_with_the_problem_sent_back(
    make_settings: MakeSettings,
) -> None:
    good = json.dumps({"findings": [FINDING]})
    backend = ScriptedBackend(replies('{"findings": [{"title": "x"}]}', good))
    snap = await run_one(make_settings, backend, TaskRequest(task="review", output_schema="findings"))
    assert snap.state is TaskState.COMPLETED and snap.attempts == 2
    assert snap.structured == {"findings": [FINDING]}
    previous, feedback = backend.calls[1].follow_up or ("", "")
    assert previous == '{"findings": [{"title": "x"}]}'
    assert "'severity' is a required property" in feedback and "JSON Schema" in feedback


async def test_an_answer_that_stays_invalid_fails_as_invalid_output_and_keeps_the_raw_text(
    make_settings: MakeSettings,
) -> None:
    backend = ScriptedBackend(replies("not json", "still not json"))
    snap = await run_one(make_settings, backend, TaskRequest(task="review", output_schema="findings"))
    assert snap.state is TaskState.FAILED
    assert snap.error is not None and snap.error.kind is ErrorKind.INVALID_OUTPUT
    assert snap.output == "still not json" and snap.structured is None
    assert len(backend.calls) == 2


async def test_the_spawns_schema_applies_to_tasks_without_their_own(make_settings: MakeSettings) -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    backend = ScriptedBackend(replies('{"n": 1}', "free text"))
    request = SpawnRequest(
        tasks=[TaskRequest(task="count"), TaskRequest(task="talk", output_schema=None)], output_schema=schema
    )
    async with open_registry(make_settings(), backend) as registry:
        with pytest.raises(InvalidInput, match="task 1's output_schema: output_schema 'nope'"):
            await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="x", output_schema="nope")]), caller=ME)
        ids = [t.task_id for t in (await registry.spawn(request, caller=ME)).tasks]
        with anyio.fail_after(5):
            await registry.wait(ids[:1])
        assert registry.snapshot(ids[0], caller=ME).structured == {"n": 1}
        assert backend.calls[0].output_schema == schema


def test_a_schema_may_only_reference_itself() -> None:
    local = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/n"}},
        "$defs": {"n": {"type": "integer"}},
    }
    assert resolve_schema(local) == local
    assert check_answer('{"a": "x"}', local)[1] is not None  # the local reference is followed
    for ref in ["http://127.0.0.1:9/secret", "file:///etc/passwd", "other.json#/x"]:
        with pytest.raises(InvalidInput, match="not a local reference"):
            resolve_schema({"type": "object", "properties": {"a": {"$ref": ref}}})
    with pytest.raises(InvalidInput, match="does not resolve"):
        resolve_schema({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})


def test_odd_answers_are_problems_not_crashes() -> None:
    schema = {"type": "object"}
    assert check_answer("[" * 100_000 + "]" * 100_000, schema)[0] is None
    value, problem = check_answer('{"confidence": NaN}', schema)
    assert value is None and problem is not None and "NaN" in problem


async def test_a_repair_that_fails_keeps_the_answer_it_was_repairing(make_settings: MakeSettings) -> None:
    from server import TaskFailure

    calls = 0

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            return SubagentResult(text="", model=request.model, stop_reason="end_turn")
        assert request.follow_up is not None and request.follow_up[0] == "(no answer)"
        raise TaskFailure(ErrorKind.API_ERROR, "the provider broke during the repair")

    backend = ScriptedBackend(handler)
    snap = await run_one(make_settings, backend, TaskRequest(task="review", output_schema="findings"))
    assert snap.state is TaskState.FAILED and snap.error is not None
    assert snap.error.kind is ErrorKind.API_ERROR
    assert snap.output == ""  # the (empty) answer under repair, not nothing
    backend2 = ScriptedBackend(replies('{"findings": "oops"}', "x"))

    async def failing_repair(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if request.follow_up is None:
            return SubagentResult(text='{"findings": "oops"}', model=request.model, stop_reason="end_turn")
        sink.append("partial repa")
        raise TaskFailure(ErrorKind.API_ERROR, "broke")

    backend2.handler = failing_repair
    snap = await run_one(make_settings, backend2, TaskRequest(task="review", output_schema="findings"))
    assert snap.output == '{"findings": "oops"}'


# --- patterns, and the event loop ----------------------------------------------------------------------

WORD = {
    "type": "object",
    "required": ["word"],
    "properties": {"word": {"type": "string", "pattern": "^(a+)+$"}},
}


async def test_a_pattern_that_backtracks_for_ages_in_python_fails_the_answer_at_once(
    make_settings: MakeSettings,
) -> None:
    # Python's re takes about 2**30 steps here (minutes, holding the GIL); RE2 takes 31.
    answer = json.dumps({"word": "a" * 30 + "!"})
    backend = ScriptedBackend(replies(answer, answer))
    snap = await run_one(make_settings, backend, TaskRequest(task="spell", output_schema=WORD))
    assert snap.state is TaskState.FAILED
    assert snap.error is not None and snap.error.kind is ErrorKind.INVALID_OUTPUT
    assert "at $.word: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' does not match '^(a+)+$'" in snap.error.message


async def test_an_answer_of_blank_lines_after_a_fence_is_read_at_once(make_settings: MakeSettings) -> None:
    answer = "```\n" + "\n" * 5_000 + "x"  # Python's re took n**3 steps to look for the fence's end
    backend = ScriptedBackend(replies(answer, answer))
    snap = await run_one(make_settings, backend, TaskRequest(task="review", output_schema="findings"))
    assert snap.error is not None and snap.error.kind is ErrorKind.INVALID_OUTPUT
    assert "not JSON" in snap.error.message


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        pytest.param(
            {"type": "object", "properties": {"word": {"type": "string", "pattern": "^(?!re)"}}},
            "the pattern '^(?!re)' at $.properties.word.pattern cannot be used: invalid perl operator: (?!: "
            "RE2 has no lookahead or lookbehind",
            id="lookahead",
        ),
        pytest.param(
            {"type": "object", "properties": {"list": {"type": "array", "items": {"pattern": "(a)\\1"}}}},
            "the pattern '(a)\\\\1' at $.properties.list.items.pattern cannot be used: invalid escape "
            "sequence: \\1: RE2 has no backreferences",
            id="backreference",
        ),
        pytest.param(
            {"type": "object", "patternProperties": {"^(?<=x)y$": {"type": "integer"}}},
            "the pattern '^(?<=x)y$' as a key of $.patternProperties cannot be used",
            id="lookbehind-in-patternProperties",
        ),
        pytest.param(
            {"type": "object", "propertyNames": {"pattern": "a{1001}"}},
            "RE2 counts repetitions up to {1000}",
            id="long-repetition",
        ),
    ],
)
async def test_a_pattern_re2_cannot_run_is_refused_at_spawn_naming_it_and_where_it_is(
    make_settings: MakeSettings, schema: dict[str, object], words: str
) -> None:
    backend = ScriptedBackend()
    async with open_registry(make_settings(), backend) as registry:
        with pytest.raises(InvalidInput) as spawn_level:
            await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="x")], output_schema=schema), caller=ME)
        with pytest.raises(InvalidInput) as task_level:
            await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="x", output_schema=schema)]), caller=ME)
    assert str(spawn_level.value).startswith("the spawn's output_schema: ")
    assert str(task_level.value).startswith("task 1's output_schema: ")
    for refused in (spawn_level.value, task_level.value):
        assert words in str(refused) and "RE2, which never backtracks" in str(refused)
    assert backend.calls == []


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "patternProperties": {"^x_": {}},
        "unevaluatedProperties": False,
    }
    with pytest.raises(InvalidInput, match="use additionalProperties next to the patternProperties"):
        resolve_schema(schema)


def test_a_pattern_the_schema_check_cannot_see_is_a_problem_of_the_answer_not_a_crash() -> None:
    # "#/x" is not a place for a subschema, so the schema check skips it; the $ref makes it one.
    schema = {"type": "object", "properties": {"a": {"$ref": "#/x"}}, "x": {"pattern": "(?=a)"}}
    assert resolve_schema(schema) == schema
    value, problem = check_answer('{"a": "abc"}', schema)
    assert value is None and problem is not None and "pattern that cannot be run" in problem


async def test_cancelling_a_task_while_its_answer_is_checked_ends_it_at_once(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ThreadGate(outputs.parse_json) as gate:
        monkeypatch.setattr(outputs, "parse_json", gate)
        backend = ScriptedBackend(replies(json.dumps({"findings": []})))
        async with open_registry(make_settings(), backend) as registry:
            request = SpawnRequest(tasks=[TaskRequest(task="review", output_schema="findings")])
            task_id = (await registry.spawn(request, caller=ME)).tasks[0].task_id
            await gate.entered()
            registry.cancel([task_id], caller=ME)
            with anyio.fail_after(5):  # the check is abandoned in its thread, not waited for
                await registry.wait([task_id])
            assert registry.snapshot(task_id, caller=ME).state is TaskState.CANCELLED
