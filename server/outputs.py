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
    return schema


def parse_json(text: str) -> Any:
    """The JSON value in an answer, bare or in a code fence.

    Raises:
        ValueError: there is no JSON value in it.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        match = _FENCE.search(stripped)
        if match is None:
            raise
        return json.loads(match.group(1))


def check_answer(
    text: str, schema: Mapping[str, Any], known_sources: Iterable[str] | None = None
) -> tuple[Any, str | None]:
    """Parse and validate an answer: ``(value, None)``, or ``(None, what is wrong)`` for a repair request.

    ``known_sources``, when given, are the only values allowed in any ``sources`` list in the answer
    (a synthesis must not cite tasks that do not exist).
    """
    try:
        value = parse_json(text)
    except ValueError as exc:
        return None, f"the answer is not JSON ({exc})"
    validator = Draft202012Validator(schema)
    found: list[ValidationError] = list(validator.iter_errors(value))  # pyright: ignore[reportUnknownMemberType]
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
