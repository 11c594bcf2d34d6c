"""Output schemas: the built-in ones, checking a caller's schema, and checking an answer against one.

An answer is validated here whatever backend produced it. The text may be bare JSON (what a provider's
schema-constrained decoding returns) or JSON inside a markdown code fence (what a model asked in
prose tends to write); anything else does not match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry, Resource
from referencing._core import Resolver
from referencing.jsonschema import DRAFT202012

from fanout_mcp.server.errors import InvalidInput

SEVERITIES: Final = ("critical", "high", "medium", "low", "info")

_LOCATION: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["path"],
    "properties": {
        "path": {"type": "string", "description": "file path, relative to the project root"},
        "start_line": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
        "end_line": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
    },
}

FINDINGS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["findings"],
    "properties": {
        "findings": {
            "type": "array",
            "description": "every problem found, most severe first; an empty list if there is none",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["title", "severity", "location", "detail", "recommendation", "confidence"],
                "properties": {
                    "title": {"type": "string", "description": "the problem in a few words"},
                    "severity": {"type": "string", "enum": list(SEVERITIES)},
                    "location": _LOCATION,
                    "detail": {"type": "string", "description": "what is wrong, and the evidence"},
                    "recommendation": {"type": "string", "description": "what to do about it"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
        }
    },
}

BUILTIN_SCHEMAS: Final[Mapping[str, dict[str, Any]]] = {"findings": FINDINGS_SCHEMA}

_VALIDATOR: Final = Draft202012Validator
_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL)
_MAX_PROBLEMS = 5


def resolve_schema(spec: Mapping[str, Any] | str) -> dict[str, Any]:
    """A built-in schema by name, or the caller's own schema once checked.

    Raises:
        InvalidInput: an unknown name, or a schema that is not valid JSON Schema.
    """
    if isinstance(spec, str):
        schema = BUILTIN_SCHEMAS.get(spec)
        if schema is None:
            known = ", ".join(repr(name) for name in BUILTIN_SCHEMAS)
            raise InvalidInput(
                f"output_schema {spec!r} is not a built-in schema ({known}); or give a JSON Schema"
            )
        return schema
    schema = dict(spec)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(f"output_schema is not a valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise InvalidInput('output_schema must describe a JSON object (its "type" must be "object")')
    _check_refs(schema)
    return schema


def _check_refs(schema: Mapping[str, Any]) -> None:
    """Only local references ("#/...") that resolve: a schema must never make the server fetch a URL or
    read a file, nor fail later while an answer is checked."""
    base = "urn:fanout:output-schema"
    registry: Registry[Any] = Registry()
    resource: Resource[Any] = DRAFT202012.create_resource(dict(schema))
    resolver: Resolver[Any] = registry.with_resource(base, resource).resolver(base_uri=base)
    for key, value in _references(schema):
        if not isinstance(value, str) or not value.startswith("#"):
            raise InvalidInput(
                f"output_schema: {key} {value!r} is not a local reference; only '#/...' references into the "
                "schema itself are allowed"
            )
        try:
            resolver.lookup(value)
        except Exception:  # the referencing library's Unresolvable and its kin
            raise InvalidInput(f"output_schema: {key} {value!r} does not resolve within the schema") from None


def _references(node: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in cast(dict[str, Any], node).items():
            if key in {"$ref", "$dynamicRef"}:
                yield key, value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in cast(list[Any], node):
            yield from _references(item)


def parse_json(text: str) -> Any:
    """The JSON value in an answer, bare or in a code fence.

    Raises:
        ValueError: there is no JSON value in it.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped, parse_constant=_no_constants)
    except ValueError:
        match = _FENCE.search(stripped)
        if match is None:
            raise
        return json.loads(match.group(1), parse_constant=_no_constants)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_answer(
    text: str, schema: Mapping[str, Any], known_sources: Iterable[str] | None = None
) -> tuple[Any, str | None]:
    """Parse and validate an answer: ``(value, None)``, or ``(None, what is wrong)`` for a repair request.

    ``known_sources``, when given, are the only values allowed in any ``sources`` list in the answer
    (a synthesis must not cite tasks that do not exist).
    """
    try:
        value = parse_json(text)
    except (ValueError, RecursionError) as exc:
        return None, f"the answer is not JSON ({type(exc).__name__}: {str(exc)[:200]})"
    # No registry retrieval: references resolve within the schema only, never over the network or disk.
    validator = _VALIDATOR(schema, registry=Registry[Any]())
    try:
        found: list[ValidationError] = list(validator.iter_errors(value))  # pyright: ignore[reportUnknownMemberType]
    except RecursionError:
        return None, "the answer is nested too deeply to check"
    errors = sorted(found, key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = [f"at {_where(e.absolute_path)}: {e.message}" for e in errors[:_MAX_PROBLEMS]]
        more = f" (and {len(errors) - _MAX_PROBLEMS} more)" if len(errors) > _MAX_PROBLEMS else ""
        return None, "the answer does not match the schema: " + "; ".join(problems) + more
    if known_sources is not None:
        unknown = sorted(set(_cited(value)) - set(known_sources))
        if unknown:
            return None, f"the answer cites task ids that are not among the inputs: {', '.join(unknown)}"
    return value, None


def repair_request(problem: str, schema: Mapping[str, Any]) -> str:
    """What to tell a model whose answer did not fit, for its one second chance."""
    return (
        f"Your answer cannot be used: {problem}. Answer again with only a JSON value that matches this "
        f"JSON Schema, and nothing else:\n{json.dumps(schema)}"
    )


def _where(path: Iterable[Any]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "$" + "".join(parts)


def _cited(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in cast(dict[str, Any], value).items():
            if key == "sources" and isinstance(item, list):
                yield from (str(s) for s in cast(list[Any], item))
            else:
                yield from _cited(item)
    elif isinstance(value, list):
        for item in cast(list[Any], value):
            yield from _cited(item)
