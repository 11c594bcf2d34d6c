"""Output schemas: the built-in ones, checking a caller's schema, and checking an answer against one.

An answer is validated here whatever backend produced it. The text may be bare JSON (what a provider's
schema-constrained decoding returns) or JSON inside a markdown code fence (what a model asked in
prose tends to write); anything else does not match.

Nothing here may take time out of proportion to its input: every pattern (``pattern``,
``patternProperties``, the code fence) is matched by RE2 (``patterns.py``), a schema with a pattern RE2
refuses is refused when it is given, and ``check_answer_in_worker`` keeps the event loop free while a
big answer is checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, cast

import anyio.to_thread
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing._core import Resolver
from referencing.jsonschema import DRAFT202012

from ..core.errors import InvalidInput
from .patterns import PatternError, Regex
from .validator import Validator, check_schema, keywords, where

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

_FENCE: Final = Regex(r"(?s)```(?:json)?\s*\n(.*?)\n\s*```")  # Python's re takes n**3 steps on blank lines
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
    check_schema(schema)
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
    for key, value in ((k, v) for k, v in keywords(schema) if k in {"$ref", "$dynamicRef"}):
        if not isinstance(value, str) or not value.startswith("#"):
            raise InvalidInput(
                f"output_schema: {key} {value!r} is not a local reference; only '#/...' references into the "
                "schema itself are allowed"
            )
        try:
            resolver.lookup(value)
        except Exception:  # the referencing library's Unresolvable and its kin
            raise InvalidInput(f"output_schema: {key} {value!r} does not resolve within the schema") from None


def parse_json(text: str) -> Any:
    """The JSON value in an answer, bare or in a code fence.

    Raises:
        ValueError: there is no JSON value in it.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped, parse_constant=_no_constants)
    except ValueError:
        fenced = _FENCE.first(stripped, 1)
        if fenced is None:
            raise
        return json.loads(fenced, parse_constant=_no_constants)


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
    validator = Validator(schema, registry=Registry[Any]())
    try:
        found: list[ValidationError] = list(validator.iter_errors(value))  # pyright: ignore[reportUnknownMemberType]
    except RecursionError:
        return None, "the answer is nested too deeply to check"
    except PatternError as exc:  # only a pattern check_schema could not see (see validator._matches)
        return None, f"the output schema has a pattern that cannot be run: {exc}"
    errors = sorted(found, key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = [f"at {where(e.absolute_path)}: {e.message}" for e in errors[:_MAX_PROBLEMS]]
        more = f" (and {len(errors) - _MAX_PROBLEMS} more)" if len(errors) > _MAX_PROBLEMS else ""
        return None, "the answer does not match the schema: " + "; ".join(problems) + more
    if known_sources is not None:
        unknown = sorted(set(_cited(value)) - set(known_sources))
        if unknown:
            return None, f"the answer cites task ids that are not among the inputs: {', '.join(unknown)}"
    return value, None


async def check_answer_in_worker(
    text: str, schema: Mapping[str, Any], known_sources: Iterable[str] | None = None
) -> tuple[Any, str | None]:
    """``check_answer`` in a worker thread: parsing and checking a big answer takes a while, and the event
    loop goes on serving every session meanwhile. A cancelled caller does not wait for it: the check only
    reads its arguments, and RE2 bounds its time by the answer's size, so the abandoned thread ends."""
    return await anyio.to_thread.run_sync(check_answer, text, schema, known_sources, abandon_on_cancel=True)


def repair_request(problem: str, schema: Mapping[str, Any]) -> str:
    """What to tell a model whose answer did not fit, for its one second chance."""
    return (
        f"Your answer cannot be used: {problem}. Answer again with only a JSON value that matches this "
        f"JSON Schema, and nothing else:\n{json.dumps(schema)}"
    )


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
