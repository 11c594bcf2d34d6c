"""Unknown arguments, through the real MCP client in memory: refused at every level of every tool and
prompt, naming each, the closest valid name and every valid one, with nothing done; and every tool's
input schema advertised closed."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from mcp import Client, MCPError

from tests.fake_api import FakeApi
from tests.tools.test_handlers import MODES, MakeSettings, call, connect, error, held
from tools import create_server


async def schema_of(client: Client, tool: str) -> dict[str, Any]:
    return next(t.input_schema for t in (await client.list_tools()).tools if t.name == tool)


def names_valid_at(schema: dict[str, Any], place: str) -> list[str]:
    """The names valid at the top (``""``) or in each item of the array argument ``place``."""
    return list((schema["properties"][place]["items"] if place else schema)["properties"])


def assert_names(message: str, unknown: str, meant: str, valid: list[str]) -> None:
    assert "unknown" in message and repr(unknown) in message, message
    assert f"did you mean {meant!r}?" in message, message
    assert "takes: " + ", ".join(valid) in message, message


@pytest.mark.parametrize("mode", MODES)
async def test_a_misspelt_top_level_argument_of_spawn_parallel_is_refused_and_nothing_starts(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings(), mode) as client:
        message = await error(
            client, "spawn_parallel", tasks=[{"task": "[[reply:ok]]"}], shared_contxt="what every task needs"
        )
        assert_names(
            message,
            "shared_contxt",
            "shared_context",
            names_valid_at(await schema_of(client, "spawn_parallel"), ""),
        )
        assert (await call(client, "list_tasks"))["total"] == 0
    assert fake_api.requests == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_misspelt_field_of_a_task_is_refused_with_where_it_is_and_nothing_starts(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    tasks = [{"task": "[[reply:ok]]"}, {"task": "[[reply:ok]]", "contxt": "only this task needs it"}]
    async with connect(make_settings(), mode) as client:
        schema = await schema_of(client, "spawn_parallel")
        for given in [tasks, json.dumps(tasks)]:  # a list, or the JSON text of one (as some clients send)
            message = await error(client, "spawn_parallel", tasks=given)
            assert_names(message, "contxt", "context", names_valid_at(schema, "tasks"))
            assert "in tasks[1]" in message and "tasks[0]" not in message
        assert (await call(client, "list_tasks"))["total"] == 0
    assert fake_api.requests == []


@pytest.mark.parametrize(
    ("tool", "arguments", "unknown", "meant"),
    [
        ("task_output", {"wait": 1}, "wait", "wait_s"),
        ("synthesize", {"mode": "merge", "instruction": "rank them"}, "instruction", "instructions"),
        ("list_tasks", {"stat": "running"}, "stat", "state"),
        ("cancel_tasks", {"group": "its group"}, "group", "group_id"),
    ],
)
async def test_a_misspelt_argument_of_every_other_tool_is_refused_and_nothing_is_done(
    fake_api: FakeApi,
    make_settings: MakeSettings,
    tool: str,
    arguments: dict[str, Any],
    unknown: str,
    meant: str,
) -> None:
    async with connect(make_settings()) as client:
        spawned = await call(client, "spawn_parallel", tasks=[{"task": "[[hold]]"}])
        await held(fake_api, 1)
        message = await error(client, tool, group_id=spawned["group_id"], **arguments)
        assert_names(message, unknown, meant, names_valid_at(await schema_of(client, tool), ""))
        listed = await call(client, "list_tasks")
        assert [(t["task_id"], t["state"]) for t in listed["tasks"]] == [(spawned["task_ids"][0], "running")]


async def test_a_parameter_a_tool_gains_is_known_without_edits(make_settings: MakeSettings) -> None:
    server = create_server(make_settings())

    def probe(include: str = "all", max_chars: int = 1) -> str:
        """A tool added after the fact, as task_output gains `include`."""
        return f"{include} {max_chars}"

    def probe_again(detail: str = "all") -> str:
        """The same tool, replaced: its parameters changed."""
        return detail

    server.add_tool(probe)
    async with Client(server) as client:
        message = await error(client, "probe", includ="status")
        assert_names(message, "includ", "include", ["include", "max_chars"])
        assert not (await client.call_tool("probe", {"include": "status"})).is_error
        server.remove_tool("probe")
        server.add_tool(probe_again, name="probe")
        assert not (await client.call_tool("probe", {"detail": "some"})).is_error
        assert "unknown argument 'include'; probe takes: detail." in await error(client, "probe", include="x")


@pytest.mark.parametrize("mode", MODES)
async def test_a_misspelt_prompt_argument_is_refused_naming_it_and_the_valid_ones(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings(), mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("parallel_tasks", {"itmes": "one\ntwo", "goal": "a release"})
    assert refused.value.error.code == -32602
    assert_names(refused.value.error.message, "itmes", "items", ["items", "goal", "role"])


def closed_everywhere(schema: object, where: str = "") -> list[str]:
    """Where an object schema lists properties but does not forbid others."""
    if isinstance(schema, list):
        items = cast(list[object], schema)
        return [p for i, item in enumerate(items) for p in closed_everywhere(item, f"{where}[{i}]")]
    if not isinstance(schema, dict):
        return []
    keywords = cast(dict[str, object], schema)
    open_here = (
        [where] if "properties" in keywords and keywords.get("additionalProperties") is not False else []
    )
    instance_data = ("default", "examples", "const", "enum")
    inside = [
        p for key, value in keywords.items() if key not in instance_data
        for p in closed_everywhere(value, f"{where}/{key}")
    ]  # fmt: skip
    return open_here + inside


@pytest.mark.parametrize("mode", MODES)
async def test_every_tool_advertises_its_input_schema_closed_at_every_level(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings(), mode) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.input_schema["additionalProperties"] is False, tool.name
        assert closed_everywhere(tool.input_schema) == [], tool.name
    spawn = next(t for t in tools if t.name == "spawn_parallel").input_schema
    free_form = spawn["properties"]["output_schema"]["anyOf"][0]  # a JSON Schema of the caller's: any keys
    assert free_form == {"additionalProperties": True, "type": "object"}


async def test_a_free_form_object_keeps_its_own_names(fake_api: FakeApi, make_settings: MakeSettings) -> None:
    schema = {"type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}
    async with connect(make_settings()) as client:
        spawned = await call(
            client, "spawn_parallel", tasks=[{"task": '[[reply:{"verdict": "ok"}]]'}], output_schema=schema
        )
        done = await call(client, "task_output", task_ids=spawned["task_ids"], wait_s=20)
    assert done["tasks"][0]["structured"] == {"verdict": "ok"}


@pytest.mark.parametrize("mode", MODES)
async def test_arguments_that_break_the_schema_are_refused_by_name_with_what_they_are_for(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    cases: list[tuple[str, dict[str, Any], list[str], str]] = [
        ("spawn_parallel", {}, ["tasks is missing (The independent tasks, one subagent each)"], "tasks"),
        (
            "spawn_parallel",
            {"tasks": [{"role": "x"}, {"task": "y", "timeout_s": -5}]},
            [
                "tasks[0].task is missing (What this subagent must do",
                "tasks[1].timeout_s: Input should be greater than 0 (got -5)",
            ],
            "tasks[0].task, tasks[1].timeout_s",
        ),
        (
            "synthesize",
            {"group_id": "g-x", "quorum": "most"},
            ["quorum: Input should be 'any', 'majority' or 'all' (got 'most'), or a valid integer"],
            "quorum",
        ),
    ]
    async with connect(make_settings(), mode) as client:
        for tool, arguments, told, fields in cases:
            result = await client.call_tool(tool, arguments)
            content: Any = result.structured_content
            assert result.is_error and content["error"]["kind"] == "invalid_input"
            message = content["error"]["message"]
            assert message.startswith(f"{tool} refused, nothing was done: "), message
            for words in told:
                assert words in message, message
            for pydantic_words in ("validation error", "pydantic", "type=", "Arguments"):
                assert pydantic_words not in message, message
            assert content["next"] == f"{tool} again with {fields} corrected; nothing was done."
        assert (await call(client, "list_tasks"))["total"] == 0
    assert fake_api.requests == []
