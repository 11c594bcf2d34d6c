"""One spawn contract: ``spawn_parallel``'s parameters are ``SpawnRequest``'s fields (names, order,
types, defaults, descriptions), and the tool hands every one of them on, so the tool, the engine and
plan files (a ``SpawnRequest`` plus its synthesis) cannot drift apart."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, get_type_hints

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from server import SpawnRequest
from server.app.plan import Plan
from tools.handlers import spawn_parallel

TOOL_ONLY = {"ctx", "wait_s"}  # the MCP context, and how long the call itself waits


def tool_parameters() -> dict[str, FieldInfo]:
    """``spawn_parallel``'s parameters of the spawn, as pydantic reads them into its input schema."""
    hints = get_type_hints(spawn_parallel, include_extras=True)
    parameters = inspect.signature(spawn_parallel).parameters.values()
    return {
        p.name: FieldInfo.from_annotated_attribute(
            hints[p.name], PydanticUndefined if p.default is p.empty else p.default
        )
        for p in parameters
        if p.name not in TOOL_ONLY
    }


def test_spawn_parallel_takes_exactly_the_spawn_requests_fields_in_their_order() -> None:
    assert list(tool_parameters()) == list(SpawnRequest.model_fields)


def test_each_parameter_has_its_fields_type_default_and_description_and_no_looser_bound() -> None:
    parameters = tool_parameters()
    for name, field in SpawnRequest.model_fields.items():
        parameter = parameters[name]
        assert parameter.annotation == field.annotation, name
        assert parameter.default == field.default, name
        assert parameter.description == field.description and field.description, name
        # The tool may bound a value more tightly at its border (its schema shows the bound), never less.
        assert all(bound in parameter.metadata for bound in field.metadata), name


def test_spawn_parallel_hands_every_field_on_to_the_spawn() -> None:
    tree = ast.parse(textwrap.dedent(inspect.getsource(spawn_parallel)))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "SpawnRequest"
    ]
    assert len(calls) == 1
    passed: dict[str, Any] = {
        k.arg: k.value.id for k in calls[0].keywords if k.arg and isinstance(k.value, ast.Name)
    }
    assert passed == {name: name for name in SpawnRequest.model_fields}


def test_a_plan_is_a_spawn_request_plus_its_synthesis_and_its_edit_tasks_apply() -> None:
    assert issubclass(Plan, SpawnRequest)
    assert set(Plan.model_fields) - set(SpawnRequest.model_fields) == {"synthesis", "wait_s", "apply"}
