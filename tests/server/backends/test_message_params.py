"""The Messages API parameters of a subagent call."""

from __future__ import annotations

from typing import Any

from server import SubagentRequest
from server.backends.message_params import (
    _output_config,  # pyright: ignore[reportPrivateUsage]
)


def test_constrained_decoding_is_asked_only_where_it_cannot_make_the_schema_stricter() -> None:
    def config(schema: dict[str, Any]) -> dict[str, Any]:
        request = SubagentRequest(
            model="m", max_tokens=1, system="", prompt="", cache_system=False, output_schema=schema
        )
        return _output_config(request)

    nullable = config({"type": "object", "properties": {"a": {"type": ["string", "null"]}}})
    sent = nullable["output_config"]["format"]["schema"]["properties"]["a"]
    assert [branch["type"] for branch in sent["anyOf"]] == ["string", "null"]
    assert config({"type": "object", "additionalProperties": {"type": "integer"}}) == {}
    assert config({"type": "object", "patternProperties": {"^x": {"type": "integer"}}}) == {}
