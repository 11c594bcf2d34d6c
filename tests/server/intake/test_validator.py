"""The validator with RE2 patterns judges ordinary schemas exactly as jsonschema's own does."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError, protocols

from server.intake.validator import Validator


def errors(validator: protocols.Validator, instance: Any) -> list[ValidationError]:
    """``validator.iter_errors(instance)``, typed by jsonschema's validator protocol (which both classes
    implement) rather than by the classes' own stubs, which leave it partly untyped."""
    return list(validator.iter_errors(instance))


CASES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"pattern": "^[a-z]+-\\d{2,4}$"}, ["abc-12", "abc-2024", "ABC-12", "abc-1", "abc-12345", 7]),
    ({"pattern": "b"}, ["abc", "xyz", ""]),  # a pattern matches anywhere unless anchored
    ({"pattern": "^(foo|bar)?baz$"}, ["baz", "foobaz", "quxbaz"]),
    (
        {"patternProperties": {"^x_": {"type": "integer"}, "_id$": {"type": "string"}}},
        [{"x_1": 1, "a_id": "k"}, {"x_1": "1"}, {"a_id": 2, "x_id": 3}, {"other": None}, []],
    ),
    (
        {"patternProperties": {"^x_": {}}, "additionalProperties": False},
        [{"x_1": 1}, {"y": 1}, {"y": 1, "z": 2, "x_2": 0}],
    ),
    (
        {
            "properties": {"id": {}},
            "patternProperties": {"^x_": {}},
            "additionalProperties": {"type": "string"},
        },
        [{"id": 1, "x_a": 2, "note": "ok"}, {"note": 3, "more": 4}],
    ),
    (
        {"properties": {"a": {}}, "additionalProperties": False},
        [{"a": 1}, {"a": 1, "b": 2}, {"c": 3, "b": 2}],
    ),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, [{"ab": 1}, {"Ab": 1, "c": 2}]),
    ({"items": {"type": "string", "pattern": "^v\\d+$"}}, [["v1", "v22"], ["v1", "w2", "v"]]),
]


@pytest.mark.parametrize(("schema", "instances"), CASES)
def test_ordinary_patterns_give_the_same_verdicts_and_messages_as_jsonschema(
    schema: dict[str, Any], instances: list[Any]
) -> None:
    ours, theirs = Validator(schema), Draft202012Validator(schema)
    for instance in instances:
        expected = sorted(e.message for e in errors(theirs, instance))
        assert sorted(e.message for e in errors(ours, instance)) == expected, instance


def test_a_long_string_that_breaks_a_pattern_is_shown_cut() -> None:
    (error,) = errors(Validator({"pattern": "^a+$"}), "a" * 10_000 + "!")
    assert error.message == f"{'a' * 200!r}... (10001 characters) does not match '^a+$'"
