"""What a tool call may be given, and what a refused call answers.

Unknown arguments are refused, at every level, naming each one, the closest valid name and the valid
ones; every tool's input schema is advertised closed (``additionalProperties: false``) at every level,
and lean (``lean.py``). Arguments that break their schema (one missing, a wrong type, a number out of
range) are refused naming each argument, what is wrong with it and what it is for, not with pydantic's
report. Every refusal, and every failure of a tool, is an ``isError`` result with the message and what
to do next in its text and in its structured content (``results.error_result``).

MCPServer (mcp 2.3) builds a tool's arguments model from the function's signature and drops what it
does not know, so a misspelt optional argument (``shared_contxt``) was ignored and its value lost without
a word. The check reads each tool's own input schema, and a prompt's own argument list: a parameter
added to a function is known at once, with nothing to edit here.

An unknown tool argument is an ``isError`` result, as any other bad input is (the calling model reads it
and corrects the call); an unknown prompt argument is an invalid-params error, as prompts have no other.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import pydantic_core
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import INVALID_PARAMS, CallToolResult, GetPromptResult, InputRequiredResult, Tool
from pydantic import ValidationError

from .lean import ServerFacts, each_schema, lean_tool
from .results import Refusal, call_again, error_result

LifespanT = TypeVar("LifespanT")
logger = logging.getLogger(__name__)

_DEPTH: Final = 32  # levels of arguments walked at most (our schemas have three)
_SHOWN: Final = 10  # unknown names shown per place, and paths per name
_NAME_CHARS: Final = 60  # of a caller's name, quoted in the message


@dataclass(frozen=True, slots=True)
class Unknown:
    """An argument (or a field of one) that its place does not take."""

    path: str  # where: "" at the top level, else "tasks[2]"
    name: str
    valid: tuple[str, ...]


class StrictServer(MCPServer[LifespanT]):
    """An ``MCPServer`` that refuses unknown tool and prompt arguments instead of dropping them,
    advertises every tool lean and its input schema closed, and answers every refused or failed tool
    call with an error result a model can act on."""

    def __init__(self, *args: Any, facts: ServerFacts | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._facts = facts or ServerFacts()
        # Closed input schemas by tool name, read on a call to a tool not in it; emptied when a tool is
        # removed (a tool is replaced by removing it first).
        self._schemas: dict[str, dict[str, Any]] = {}

    async def list_tools(self) -> list[Tool]:
        tools = [lean_tool(tool, self._facts) for tool in await super().list_tools()]
        return [tool.model_copy(update={"input_schema": closed(tool.input_schema)}) for tool in tools]

    def remove_tool(self, name: str) -> None:
        super().remove_tool(name)
        self._schemas = {}

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[LifespanT, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if name not in self._schemas:
            self._schemas = {tool.name: tool.input_schema for tool in await self.list_tools()}
        schema = self._schemas.get(name)
        if schema is None:
            return error_result(Refusal("invalid_input", f"Unknown tool: {name}", self._tool_names()))
        if unknown := unknown_arguments(arguments, schema):
            return error_result(Refusal("invalid_input", describe(name, unknown), call_again(name)))
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            logger.exception("Tool %r raised an unexpected exception", name)
            return error_result(_crash(name))
        except ToolError as exc:
            refusal = refusal_of(name, exc, schema)
            logger.info("Tool %r refused: %s", name, refusal.kind)  # the message may hold the caller's data
            return error_result(refusal)

    def _tool_names(self) -> str:
        return "One of this server's tools: " + ", ".join(sorted(self._schemas)) + "."

    async def get_prompt(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        context: Context[LifespanT, Any] | None = None,
    ) -> GetPromptResult | InputRequiredResult:
        prompt = next((p for p in await self.list_prompts() if p.name == name), None)
        if prompt is not None:
            valid = tuple(argument.name for argument in prompt.arguments or [])
            if unknown := [Unknown("", key, valid) for key in arguments or {} if key not in valid]:
                raise MCPError(code=INVALID_PARAMS, message=describe(name, unknown))
        return await super().get_prompt(name, arguments, context)


def refusal_of(tool: str, exc: ToolError, schema: Mapping[str, Any]) -> Refusal:
    """What a ``ToolError`` the SDK raised for ``tool`` tells the caller: a tool's own ``Refusal`` as it
    is, arguments that broke the schema argument by argument, any other message as it is."""
    cause = exc.__cause__
    if isinstance(cause, Refusal):
        return cause
    if isinstance(cause, ValidationError):
        return invalid_arguments(tool, cause, schema)
    message = str(cause) if isinstance(cause, ToolError) else str(exc)
    return Refusal("invalid_input", message, call_again(tool))


def _crash(tool: str) -> Refusal:
    return Refusal(
        "internal",
        f"{tool} failed inside the server (a bug; the server logged it).",
        f"{tool} again; if it fails the same way, carry on without it and report the bug.",
    )


def closed(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with ``additionalProperties: false`` on every object schema that lists its properties
    and says nothing of others (a free-form object, ``additionalProperties: true``, stays open)."""

    def close(one: dict[str, Any]) -> dict[str, Any]:
        if "properties" in one and "additionalProperties" not in one:
            one["additionalProperties"] = False
        return one

    return each_schema(schema, close)


def unknown_arguments(arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Unknown]:
    """Every name in ``arguments``, at any level the schema describes, that its place does not take.

    A top-level argument given as JSON text where the schema wants no string is read as the JSON it
    holds, as MCPServer itself does before validating.
    """
    found: list[Unknown] = []
    properties = cast(dict[str, Any], schema.get("properties", {}))
    parsed = {
        key: _as_json(value, _resolve(properties[key], schema)) if key in properties else value
        for key, value in arguments.items()
    }
    _walk(parsed, schema, schema, "", found, 0)
    return found


def _walk(value: object, schema: Mapping[str, Any], root: Mapping[str, Any], path: str,
          found: list[Unknown], depth: int) -> None:  # fmt: skip
    if not isinstance(value, dict | list) or depth > _DEPTH:
        return  # a scalar has no names in it
    schema = _branch(cast(object, value), _resolve(schema, root), root)
    if isinstance(value, dict) and _is_closed(schema):
        properties = cast(dict[str, Any], schema["properties"])
        for key, item in cast(dict[str, object], value).items():
            if key in properties:
                _walk(item, properties[key], root, f"{path}.{key}" if path else key, found, depth + 1)
            else:
                found.append(Unknown(path, key, tuple(properties)))
    elif isinstance(value, list) and isinstance(items := schema.get("items"), dict):
        items = _resolve(cast(dict[str, Any], items), root)  # once for every item
        for index, item in enumerate(cast(list[object], value)):
            _walk(item, items, root, f"{path}[{index}]", found, depth + 1)


def _branch(value: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """The alternative of an ``anyOf``/``oneOf`` that ``value`` is checked against: for an object, the
    closed object schema that knows most of its names; for an array, the first array schema."""
    options = [_resolve(option, root) for option in schema.get("anyOf", schema.get("oneOf", []))]
    if not options:
        return schema
    if isinstance(value, dict):
        names = set(cast(dict[str, object], value))
        objects = [option for option in options if _is_closed(option)]
        return max(objects, key=lambda option: len(names & set(option["properties"])), default=schema)
    if isinstance(value, list):
        return next((option for option in options if "items" in option), schema)
    return schema


def _is_closed(schema: Mapping[str, Any]) -> bool:
    return isinstance(schema.get("properties"), dict) and schema.get("additionalProperties") is False


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """A local ``$ref`` (``#/$defs/Name``) replaced by what it names, with the referring schema's own
    keywords kept beside it."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Mapping[str, Any] = root
    for part in ref[2:].split("/"):
        found = target.get(part)
        target = cast(dict[str, Any], found) if isinstance(found, dict) else {}
    return {**target, **{key: value for key, value in schema.items() if key != "$ref"}}


def _as_json(value: object, schema: Mapping[str, Any]) -> object:
    if not isinstance(value, str) or _takes_string(schema):
        return value
    try:
        return pydantic_core.from_json(value)
    except ValueError:
        return value


def _takes_string(schema: Mapping[str, Any]) -> bool:
    options = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    return any(option.get("type") == "string" or "enum" in option or "const" in option for option in options)


def describe(owner: str, unknown: list[Unknown]) -> str:
    """What was refused, for the calling model: each unknown name with the closest valid one, and the
    names its place takes."""
    places: dict[tuple[str, tuple[str, ...]], dict[str, list[str]]] = {}
    for item in unknown:
        place = (re.sub(r"\[\d+\]", "[]", item.path), item.valid)
        places.setdefault(place, {}).setdefault(item.name, []).append(item.path)
    parts = [_describe_place(owner, pattern, valid, names) for (pattern, valid), names in places.items()]
    return f"{owner} refused, nothing was done: " + "; ".join(parts) + "."


def _describe_place(owner: str, pattern: str, valid: tuple[str, ...], names: dict[str, list[str]]) -> str:
    shown = [_describe_name(name, valid, paths) for name, paths in list(names.items())[:_SHOWN]]
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    noun = ("argument" if not pattern else "field") + ("s" if len(names) > 1 else "")
    if not pattern:
        place = owner
    elif pattern.endswith("[]"):
        place = f"each item of {pattern[:-2]}"
    else:
        place = pattern
    return f"unknown {noun} {', '.join(shown)}{more}; {place} takes: {', '.join(valid) or 'nothing'}"


def _describe_name(name: str, valid: tuple[str, ...], paths: list[str]) -> str:
    quoted = repr(name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS] + "…")
    notes: list[str] = []
    if paths != [""]:
        more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
        notes.append("in " + ", ".join(paths[:_SHOWN]) + more)
    if close := difflib.get_close_matches(name, valid, n=1):
        notes.append(f"did you mean {close[0]!r}?")
    return quoted + (f" ({'; '.join(notes)})" if notes else "")


# --- arguments that break their schema -------------------------------------------------------------


def invalid_arguments(tool: str, error: ValidationError, schema: Mapping[str, Any]) -> Refusal:
    """``error`` (pydantic's, for ``tool``'s arguments) told argument by argument: where, what is wrong
    and, for one that is missing, what it is for. A value that may take several shapes fails once per
    shape; their complaints are told together."""
    problems: dict[str, list[str]] = {}
    described: dict[str, str] = {}
    for item in error.errors(include_url=False):
        path, place = _place(item["loc"], schema)
        if item["type"] == "missing":
            problems.setdefault(path, []).append("missing")
            described[path] = str(place.get("description", ""))
        else:
            problems.setdefault(path, []).append(f"{item['msg']} (got {_shown(item.get('input'))})")
    parts = [_problem(path, complaints, described.get(path, "")) for path, complaints in problems.items()]
    message = f"{tool} refused, nothing was done: " + "; ".join(parts) + "."
    return Refusal("invalid_input", message, call_again(tool, ", ".join(problems)))


def _place(loc: tuple[int | str, ...], root: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The argument ``loc`` names, as a path (``tasks[0].timeout_s``), and its schema; a part that
    names no property (which of a union's shapes failed) ends the path."""
    path = ""
    schema: Mapping[str, Any] = root
    for part in loc:
        found = _step(schema, part, root)
        if found is None:
            break
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}" if path else str(part)
        schema = found
    return path or "arguments", schema


def _step(schema: Mapping[str, Any], part: int | str, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    schema = _resolve(schema, root)
    for option in [schema, *(_resolve(o, root) for o in schema.get("anyOf", []))]:
        if isinstance(part, int) and isinstance(option.get("items"), dict):
            return cast(dict[str, Any], option["items"])
        properties = option.get("properties")
        if isinstance(part, str) and isinstance(properties, dict) and part in properties:
            return cast(dict[str, Any], properties[part])
    return None


def _problem(path: str, complaints: list[str], description: str) -> str:
    if complaints == ["missing"]:
        return f"{path} is missing" + (f" ({description.rstrip('.')})" if description else "")
    shape = "Input should be "
    if len(complaints) > 1 and all(c.startswith(shape) for c in complaints):
        return f"{path}: {shape}" + ", or ".join(c.removeprefix(shape) for c in complaints)
    return f"{path}: {complaints[0]}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _NAME_CHARS else text[:_NAME_CHARS] + "…"
