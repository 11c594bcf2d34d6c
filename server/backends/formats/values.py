"""Values read out of a CLI's JSON without trusting its shape: a value of another shape reads as none
(None, an empty mapping, 0)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast


def loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def json_object(line: str) -> Mapping[str, object]:
    """The JSON object on ``line``, or an empty one (a blank line, a log line, a JSON non-object)."""
    line = line.strip()
    return mapping(loads(line)) if line.startswith("{") else {}


def dig(node: object, path: str) -> object:
    """The value at a dotted ``path`` of keys (or list positions), or None."""
    for step in path.split("."):
        if isinstance(node, dict):
            node = cast(dict[str, object], node).get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(cast(list[object], node)):
            node = cast(list[object], node)[int(step)]
        else:
            return None
    return node


def as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def mapping(value: object) -> Mapping[str, object]:
    return cast(dict[str, object], value) if isinstance(value, dict) else {}


def int_of(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
