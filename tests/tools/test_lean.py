"""The tool list a client puts in its model's prompt, through the real MCP client in memory: within its
size targets, without titles or null branches, and true to the code and to this server's settings."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from typing import Any, cast

import pytest
from mcp_types import Tool

from server.config.commands import CommandSpec
from tests.fake_api import FakeApi
from tests.tools.test_handlers import MODES, MakeSettings, connect, error
from tools import handlers as tasks
from tools.change_tools import apply_changes
from tools.run_parallel import run_parallel

# Names, descriptions and input schemas: 2,000 tokens at four characters a token for the first five tools;
# retry_tasks added about 720 characters, edit tasks about 1,160 (apply_changes, spawn_parallel's edit and
# scope, task_output's include="patch") and run_parallel about 4,400 (spawn_parallel's arguments again,
# and the synthesis's): 14,348 with all eight; a task's verify (in both spawn tools) 280 more and
# apply_changes' resolve 124: 14,752. The targets are what that measured, rounded up a little.
PROMPT_CHARS = 14_760
LIST_CHARS = 20_900  # the whole tools/list answer (20,890 measured, list_tasks' worktree_bytes included)
TOOLS = {
    "spawn_parallel": tasks.spawn_parallel,
    "task_output": tasks.task_output,
    "synthesize": tasks.synthesize,
    "list_tasks": tasks.list_tasks,
    "cancel_tasks": tasks.cancel_tasks,
    "retry_tasks": tasks.retry_tasks,
    "run_parallel": run_parallel,
    "apply_changes": apply_changes,
}


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema in ``schema``, itself first (the values of ``properties`` are schemas; its keys
    are names, one of which may be ``title``)."""
    if not isinstance(schema, dict):
        return
    one = cast(dict[str, Any], schema)
    yield one
    for keyword, value in one.items():
        if keyword == "properties":
            for sub in cast(dict[str, Any], value).values():
                yield from subschemas(sub)
        elif keyword in ("items", "anyOf", "additionalProperties"):
            for sub in cast(list[Any], value) if isinstance(value, list) else [value]:
                yield from subschemas(sub)


def properties(tool: Tool) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every argument of ``tool``, a task's fields included, by name."""
    for schema in subschemas(tool.input_schema):
        yield from cast(dict[str, dict[str, Any]], schema.get("properties", {})).items()


@pytest.mark.parametrize("mode", MODES)
async def test_the_tool_list_is_within_its_size_targets(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings(), mode) as client:
        tools = (await client.list_tools()).tools
    prompt = sum(len(t.name) + len(t.description or "") + len(compact(t.input_schema)) for t in tools)
    listed = compact({"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]})
    assert prompt <= PROMPT_CHARS, prompt
    assert len(listed) <= LIST_CHARS, len(listed)


@pytest.mark.parametrize("mode", MODES)
async def test_descriptions_are_dedented_and_input_schemas_carry_no_titles_or_null_branches(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with connect(make_settings(), mode) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.description and not re.search(r"^[ \t]", tool.description, re.MULTILINE), tool.description
        assert "$defs" not in tool.input_schema and "$ref" not in compact(tool.input_schema)
        for schema in subschemas(tool.input_schema):
            assert "title" not in schema and schema.get("type") != "null", (tool.name, schema)
            assert schema.get("default", ...) is not None, (tool.name, schema)


async def test_the_tool_list_states_this_servers_settings_and_offers_what_its_roster_runs(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    settings = make_settings(
        default_wait_s=7,
        max_wait_s=9,
        max_tasks_per_spawn=12,
        max_output_chars=30_000,
        commands={"mycli": CommandSpec(argv=("true",))},
    )
    async with connect(settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        refused = await error(client, "spawn_parallel", tasks=[{"task": "x", "backend": "nowhere"}])
    spawn = tools["spawn_parallel"].input_schema
    assert (spawn["properties"]["tasks"]["minItems"], spawn["properties"]["tasks"]["maxItems"]) == (1, 12)
    offered = re.findall(r"'([\w-]+)'", refused.split("choose one of", 1)[1].split(".")[0])
    for place in (spawn, spawn["properties"]["tasks"]["items"]):
        assert sorted(place["properties"]["backend"]["enum"]) == sorted(offered)
    assert "mycli" in offered and "sampling" in offered
    for name in ("task_output", "synthesize"):
        assert "(default 7, at most 9)" in tools[name].input_schema["properties"]["wait_s"]["description"]
    assert "30000 characters" in (tools["task_output"].description or "")
    for tool in tools.values():
        assert "$" not in (tool.description or "") + compact(tool.input_schema), tool.name


@pytest.mark.parametrize("mode", MODES)
async def test_documented_defaults_and_names_are_the_codes(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    settings = make_settings(default_wait_s=7, max_wait_s=9)
    async with connect(settings, mode) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        signature = inspect.signature(TOOLS[tool.name])
        names = {value for _, prop in properties(tool) for value in values_of(prop)}
        for name, prop in properties(tool):
            if "default" in prop and name in signature.parameters:  # as the function has it
                assert prop["default"] == signature.parameters[name].default, (tool.name, name)
            documented = re.findall(r"\bdefault:? (\d+)", prop.get("description", ""))
            assert set(documented) <= {str(prop.get("default")), "7"}, (tool.name, name, documented)
            if values_of(prop):  # a name quoted for an argument that takes names is one an argument takes
                quoted = set(re.findall(r"'([\w-]+)'", prop.get("description", "")))
                assert quoted <= names, (tool.name, name, quoted - names)
    by_name = {tool.name: dict(properties(tool)) for tool in tools}
    for tool in tools:  # every call a description shows names a tool, its arguments and their values
        for called, inside in re.findall(r"(\w+)\(([^)]*)\)", tool.description or ""):
            for argument in filter(None, (part.strip() for part in inside.split(","))):
                name, _, value = argument.partition("=")
                assert name in by_name[called], (tool.name, called, name)
                if value.startswith('"'):
                    assert value.strip('"') in values_of(by_name[called][name]), (tool.name, argument)


def values_of(prop: dict[str, Any]) -> list[str]:
    """The names an argument (or the items of a list argument) takes, if it takes only names."""
    found: list[str] = []
    for schema in subschemas(prop):
        found += [str(v) for v in schema.get("enum", [])] + (
            [str(schema["const"])] if "const" in schema else []
        )
    return found
