"""The Messages API parameters of one subagent call: its system block (cached when shared), its
messages (a follow-up turn and the tool turns so far, with one cache breakpoint) and, for an output
schema, constrained decoding where the API can take the schema without making it stricter."""

from __future__ import annotations

import logging
from typing import Any, cast

import anthropic

from ..core.models import SubagentRequest

logger = logging.getLogger(__name__)


def message_params(request: SubagentRequest, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Messages API parameters of one subagent call, without ``stream`` (a batch request carries
    the same ones); ``history`` holds the tool turns so far."""
    return {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "system": [_system_block(request)],
        "messages": _messages(request, history or []),
        **_output_config(request),
    }


def _messages(request: SubagentRequest, history: list[dict[str, Any]]) -> Any:
    messages: list[dict[str, Any]] = [{"role": "user", "content": request.prompt}]
    if request.follow_up is not None:
        answer, feedback = request.follow_up
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": feedback}]
    return messages + _cached_history(history)


def _cached_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool turns, with a cache breakpoint after the newest tool answer: the next turn reads the
    conversation so far from the prompt cache instead of paying for all of it again. Copies: the
    stored history keeps no breakpoint, so a call never carries more than one of them."""
    if not history or not isinstance(history[-1].get("content"), list):
        return history
    last = history[-1]
    blocks: list[dict[str, Any]] = list(last["content"])
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return [*history[:-1], {**last, "content": blocks}]


def _output_config(request: SubagentRequest) -> dict[str, Any]:
    """Schema-constrained decoding, with the schema narrowed to what the API accepts (the full schema
    is still checked on our side). A schema the narrowing would make stricter than the caller's (maps:
    ``additionalProperties`` or ``patternProperties`` with a schema) is only asked for in the prompt."""
    if request.output_schema is None or _has_open_maps(request.output_schema):
        return {}
    try:
        schema = anthropic.transform_schema(_type_lists_as_any_of(request.output_schema))
    except Exception:  # a feature the SDK cannot narrow: ask in the prompt only; the answer is still checked
        logger.debug("schema not sent for constrained decoding", exc_info=True)
        return {}
    return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}


def _has_open_maps(node: Any) -> bool:
    if isinstance(node, dict):
        fields = cast(dict[str, Any], node)
        extra = fields.get("additionalProperties")
        if "patternProperties" in fields or extra is True or isinstance(extra, dict):
            return True
        return any(_has_open_maps(value) for value in fields.values())
    if isinstance(node, list):
        return any(_has_open_maps(item) for item in cast(list[Any], node))
    return False


def _type_lists_as_any_of(node: Any) -> Any:
    """``{"type": ["string", "null"], ...}`` as ``anyOf`` of single types, which the SDK can narrow."""
    if isinstance(node, list):
        return [_type_lists_as_any_of(item) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    fields = {key: _type_lists_as_any_of(value) for key, value in cast(dict[str, Any], node).items()}
    kinds = fields.get("type")
    if isinstance(kinds, list):
        rest = {key: value for key, value in fields.items() if key != "type"}
        return {"anyOf": [{**rest, "type": kind} for kind in cast(list[Any], kinds)]}
    return fields


def _system_block(request: SubagentRequest) -> Any:
    block: dict[str, Any] = {"type": "text", "text": request.system}
    if request.cache_system:
        block["cache_control"] = {"type": "ephemeral"}
    return block
