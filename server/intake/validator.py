"""The JSON Schema validator answers are checked with: Draft 2020-12, every pattern matched by RE2.

jsonschema matches ``pattern`` and ``patternProperties`` with Python's backtracking ``re``, and so does
``additionalProperties`` (to tell which properties the patterns cover): a caller's ``"^(a+)+$"`` and a
subagent's answer of 30 characters would hold the server for minutes. ``Validator`` replaces these three
keywords with ones that match by RE2 (``patterns.py``), in time linear in the text. ``check_schema``
refuses, when the schema is given, a pattern RE2 cannot compile, saying where it is and what to write
instead (the metaschema's ``format: "regex"`` check is pointed at RE2 for that), and refuses
``unevaluatedProperties`` beside ``patternProperties``: jsonschema's ``unevaluatedProperties`` matches
those patterns itself, with ``re``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, cast

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError

from ..core.errors import InvalidInput
from .patterns import PatternError, schema_pattern

_SHOWN: Final = 200  #: characters of a string that broke a pattern shown in the error


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse a schema that is not valid JSON Schema or that holds a pattern RE2 cannot run.

    Raises:
        InvalidInput: what is wrong, where, and what to write instead.
    """
    try:
        Draft202012Validator.check_schema(schema, format_checker=_SCHEMA_FORMATS)
    except SchemaError as exc:
        if isinstance(exc.cause, PatternError):
            path = list(exc.absolute_path)
            place = f"at {where(path)}" if path[-1:] == ["pattern"] else f"as a key of {where(path)}"
            raise InvalidInput(
                f"output_schema: the pattern {exc.instance!r} {place} cannot be used: {exc.cause} (this "
                "server matches patterns with RE2, which never backtracks, so that no answer can make a "
                "check slow)"
            ) from None
        raise InvalidInput(f"output_schema is not a valid JSON Schema: {exc.message}") from None
    if {"unevaluatedProperties", "patternProperties"} <= {key for key, _ in keywords(schema)}:
        raise InvalidInput(
            "output_schema: unevaluatedProperties cannot be checked beside patternProperties here (the "
            "validator would match those patterns with a backtracking engine); use additionalProperties "
            "next to the patternProperties instead"
        )


def where(path: Iterable[Any]) -> str:
    """A location in a JSON document, as ``$.findings[0].title``."""
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "$" + "".join(parts)


def keywords(node: Any) -> Iterator[tuple[str, Any]]:
    """Every key of every object in a JSON document, with its value."""
    if isinstance(node, dict):
        for key, value in cast(dict[str, Any], node).items():
            yield key, value
            yield from keywords(value)
    elif isinstance(node, list):
        for item in cast(list[Any], node):
            yield from keywords(item)


def _matches(pattern: object, text: str) -> bool:
    """Raises PatternError: the pattern cannot be run (only where ``check_schema`` could not see it, e.g.
    a ``$ref`` into a part of the schema that is not a subschema)."""
    if not isinstance(pattern, str):
        raise PatternError(f"{pattern!r} is not a string")
    return schema_pattern(pattern).search(text)


# The keyword functions below are jsonschema's own, with RE2 where they call re.search.


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        cut = len(instance) > _SHOWN
        shown = f"{instance[:_SHOWN]!r}... ({len(instance)} characters)" if cut else repr(instance)
        yield ValidationError(f"{shown} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in cast(dict[str, Any], instance).items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    named: Mapping[str, Any] = schema.get("properties", {})
    patterns: list[str] = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in cast(dict[str, Any], instance)
        if key not in named and not any(_matches(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        listed = ", ".join(repr(extra) for extra in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(pattern) for pattern in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")


def _compiles(instance: object) -> bool:
    if isinstance(instance, str):
        schema_pattern(instance)
    return True


def _schema_formats() -> FormatChecker:
    """jsonschema's format checks for a schema's own values, with "regex" meaning: RE2 compiles it."""
    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("regex", raises=PatternError)(_compiles)
    return checker


_SCHEMA_FORMATS: Final = _schema_formats()
Validator: Final[type[Draft202012Validator]] = validators.extend(  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)
