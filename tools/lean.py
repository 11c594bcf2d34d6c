"""The tool list a client puts in its model's prompt, made lean and true to this server.

MCPServer publishes each tool's docstring as it is written (indented) and the input schema pydantic
generates: a ``title`` on every property, a ``null`` branch and ``default: null`` on every optional
argument, and nothing of what only the server's settings know. Every tool list goes through
``lean_tool``, which dedents the description and fills in the server's values (``$name``), drops the
titles and the null branches (leaving an optional argument out is how to say "none"), and adds what the
settings know: the names an argument takes (``backend``: the backends this server offers) and how many
items a list may hold (``tasks``: 1 to the server's limit).

An output schema is reduced to its top level (the structured content is self-describing JSON; Claude
Code does not show output schemas to its model) and given the error branch: an ``isError`` result
carries structured content too, and the TypeScript SDK's client (Claude Code's) checks any structured
content against the tool's output schema, error or not.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from string import Template
from typing import Any, Final, cast

from mcp_types import Tool

from .result_models import ErrorResult

Schema = dict[str, Any]

# Schema keywords whose values are schemas, by the shape of the value (JSON Schema 2020-12 applicators).
_SCHEMA_MAPS: Final = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS: Final = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE: Final = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_NULL: Final = {"type": "null"}


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What this server's tool list states that only its settings know."""

    values: Mapping[str, str] = field(default_factory=dict[str, str])  #: ``$name`` in a description
    enums: Mapping[str, Sequence[str]] = field(default_factory=dict[str, Sequence[str]])  #: by property
    max_items: Mapping[str, int] = field(default_factory=dict[str, int])  #: an array property's limit


def lean_tool(tool: Tool, facts: ServerFacts) -> Tool:
    output = tool.output_schema
    return tool.model_copy(
        update={
            "description": _text(inspect.cleandoc(tool.description or ""), facts),
            "input_schema": lean_input(tool.input_schema, facts),
            "output_schema": None if output is None else lean_output(output),
        }
    )


def each_schema(schema: Mapping[str, Any], change: Callable[[Schema], Schema]) -> Schema:
    """``schema`` with ``change`` applied to it and to every schema inside it, innermost first."""
    inner = {keyword: _each_inside(keyword, value, change) for keyword, value in schema.items()}
    return change(inner)


def _each_inside(keyword: str, value: object, change: Callable[[Schema], Schema]) -> object:
    if keyword in _SCHEMA_MAPS and isinstance(value, dict):
        return {key: _each_if_schema(sub, change) for key, sub in cast(dict[str, object], value).items()}
    if keyword in _SCHEMA_LISTS and isinstance(value, list):
        return [_each_if_schema(sub, change) for sub in cast(list[object], value)]
    if keyword in _SCHEMA_ONE:
        return _each_if_schema(value, change)
    return value


def _each_if_schema(value: object, change: Callable[[Schema], Schema]) -> object:
    return each_schema(cast(Schema, value), change) if isinstance(value, dict) else value


def lean_input(schema: Mapping[str, Any], facts: ServerFacts) -> Schema:
    """``schema`` without titles or null branches, with the server's values, names and limits."""

    def lean(one: Schema) -> Schema:
        one = _without_null(one)
        if isinstance(one.get("title"), str):
            del one["title"]
        if isinstance(one.get("description"), str):
            one["description"] = _text(one["description"], facts)
        properties = one.get("properties")
        if isinstance(properties, dict):
            one["properties"] = {
                name: _with_facts(name, cast(Schema, sub), facts)
                for name, sub in cast(dict[str, object], properties).items()
            }
        return one

    return _inlined(each_schema(schema, lean))


def _inlined(schema: Schema) -> Schema:
    """``schema`` with every ``$ref`` to its ``$defs`` replaced by what it names (none of ours refers
    to itself), the referring schema's own keywords winning, and no ``$defs`` left."""
    defs = cast(dict[str, Schema], schema.get("$defs", {}))

    def inline(one: Schema) -> Schema:
        ref = one.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
            return one
        target = each_schema(defs[ref.removeprefix("#/$defs/")], inline)
        return target | {key: value for key, value in one.items() if key != "$ref"}

    inlined = each_schema(schema, inline)
    inlined.pop("$defs", None)
    return inlined


def _without_null(one: Schema) -> Schema:
    """``one`` without its null branch and a default of null or of an empty list (leaving the argument
    out says as much)."""
    one = dict(one)
    if one.get("default", ...) in (None, []):
        del one["default"]
    options = one.get("anyOf")
    if not isinstance(options, list) or _NULL not in options:
        return one
    rest = [option for option in cast(list[Schema], options) if option != _NULL]
    del one["anyOf"]
    return {**rest[0], **one} if len(rest) == 1 else {**one, "anyOf": rest}


def _with_facts(name: str, sub: Schema, facts: ServerFacts) -> Schema:
    if name in facts.enums:
        sub = _with_enum(sub, list(facts.enums[name]))
    if name in facts.max_items and sub.get("type") == "array":
        sub = {**sub, "minItems": 1, "maxItems": facts.max_items[name]}
    return sub


def _with_enum(sub: Schema, names: list[str]) -> Schema:
    """The string (or the string branch of ``sub``) limited to ``names``."""
    if sub.get("type") == "string":
        return {key: value for key, value in sub.items() if key not in ("maxLength", "minLength")} | {
            "enum": names
        }
    options = sub.get("anyOf")
    if isinstance(options, list):
        return {**sub, "anyOf": [_with_enum(option, names) for option in cast(list[Schema], options)]}
    return sub


def _text(text: str, facts: ServerFacts) -> str:
    return Template(text).safe_substitute(facts.values)


def lean_output(schema: Mapping[str, Any]) -> Schema:
    """The top level of ``schema`` (each property's type, not what is inside it), which a result
    matches, or an error result (``ErrorResult``) does."""
    properties = {
        name: _kind(cast(Schema, sub), schema)
        for name, sub in cast(dict[str, object], schema.get("properties", {})).items()
    }
    return {
        "type": "object",
        "properties": {**properties, **_ERROR["properties"]},
        "anyOf": [{"required": schema.get("required", [])}, {"required": _ERROR["required"]}],
    }


def _kind(sub: Schema, root: Mapping[str, Any]) -> Schema:
    """What a value of ``sub`` is: its type (an array's items only if they are not objects), or its
    values; never null, since a field that is null is left out."""
    sub = _without_null(_resolve(sub, root))
    if "enum" in sub or "const" in sub:
        return {key: sub[key] for key in ("enum", "const") if key in sub}
    if "anyOf" in sub:
        return {"anyOf": [_kind(option, root) for option in cast(list[Schema], sub["anyOf"])]}
    kind = sub.get("type")
    if kind == "array" and isinstance(sub.get("items"), dict):
        items = _kind(cast(Schema, sub["items"]), root)
        return (
            {"type": "array"} if items.get("type") in ("object", None) else {"type": "array", "items": items}
        )
    if kind == "object" or "properties" in sub:
        return {"type": "object"}
    return {"type": kind} if isinstance(kind, str) else {}


def _resolve(sub: Schema, root: Mapping[str, Any]) -> Schema:
    ref = sub.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return sub
    return cast(Schema, root.get("$defs", {})[ref.removeprefix("#/$defs/")])


def _error_branch() -> Schema:
    """``ErrorResult``'s schema, inlined and without titles or descriptions."""

    def plain(one: Schema) -> Schema:
        return {key: value for key, value in one.items() if key not in ("title", "description")}

    return _inlined(each_schema(ErrorResult.model_json_schema(), plain))


_ERROR: Final = _error_branch()
