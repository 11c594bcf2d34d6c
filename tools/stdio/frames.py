"""One line of stdin, parsed and checked once: the message the SDK is given, or the JSON-RPC error that
answers it when it is not a message the server can take.

The SDK's stdio transport (mcp 2.3) drops a line it cannot parse, and it reads an ``id`` it cannot use
(null, a fraction, a boolean, an object) as no id at all, which turns a request into a notification
that nothing answers: either way the caller waits for its own timeout. JSON-RPC 2.0 asks for an answer:

* text that is not JSON (not UTF-8, a syntax error, ``NaN``): ``-32700`` parse error, id null;
* JSON that is not one request: a batch, a bare value, an id that is not a string or an integer,
  ``jsonrpc`` other than ``"2.0"``, no method, ``params`` that is not an object, a string holding a
  lone surrogate escape (no Unicode text), nesting deeper than the parser's :data:`MAX_DEPTH` levels
  or a line longer than the transport's limit: ``-32600`` invalid request, with the request's id when
  it is a string or an integer, else null;
* a malformed notification (no ``id`` member) or response gets no answer: JSON-RPC answers neither.

Blank lines are skipped. Everything here is pure and synchronous: the transport checks a long line in a
worker thread, since that is CPU work proportional to its length.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, cast

import mcp_types as types
import pydantic_core
from pydantic import ValidationError

# pydantic-core's JSON parser (the one the SDK reads messages with) refuses deeper nesting.
MAX_DEPTH: Final = 201

_PAIR_OR_LONE_SURROGATE_OR_ESCAPE = re.compile(
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[dD][89a-fA-F][0-9a-fA-F]{2}|.)",
    re.DOTALL,
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A JSON string, a run of opening or of closing brackets, a comma or a colon: enough to walk an object's
# top level without parsing it.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{\[]+|[}\]]+|[,:]', re.DOTALL)
# Tokens walked at most, so that a line built to be slow to walk (many small arrays around one too deep)
# costs milliseconds: an id not found by then is answered as null.
_SCAN_TOKENS: Final = 100_000
# A member's value that could be an id: an integer or a string (a number with a fraction is not).
_ID_VALUE = re.compile(r'\s*(-?(?:0|[1-9][0-9]{0,30})(?![0-9.eE])|"[^"\\]*(?:\\.[^"\\]*)*")')


@dataclass(frozen=True, slots=True)
class Accepted:
    """A line the SDK can take, as the message it holds (parsed and validated once, here)."""

    message: types.JSONRPCMessage


@dataclass(frozen=True, slots=True)
class Refused:
    """A line the SDK never sees: why, and the error that answers it (None: nothing to answer)."""

    reason: str
    answer: types.JSONRPCError | None


def check_line(line: bytes) -> Accepted | Refused | None:
    """The verdict on one line of stdin (its newline included or not); None for a blank line."""
    if not line.strip():
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _parse_error(f"the line is not UTF-8 text ({exc.reason} at byte {exc.start})")
    try:
        message = pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as exc:
        return _unparsed(text, str(exc))
    if (problem := _problem(message)) is not None:
        return _refuse(message, problem)
    try:  # what is left to the SDK's own model of a message: a response's result and error objects
        return Accepted(types.jsonrpc_message_adapter.validate_python(message, by_name=False))
    except ValidationError as exc:
        return _refuse(message, f"not a JSON-RPC 2.0 message ({exc.error_count()} problem(s))")


def refuse_long_line(head: bytes, limit: int) -> Refused:
    """The verdict on a line longer than ``limit`` bytes, from its first bytes (``head``), where its id
    usually is; an id not found there is answered as null."""
    members = _top_level_members(head.decode("utf-8", errors="replace"))
    return _refuse(members, f"longer than {limit} bytes, the most a message may be")


def _problem(message: object) -> str | None:
    """Why a parsed line is not one JSON-RPC 2.0 message the SDK takes as it is meant, or None."""
    if isinstance(message, list):
        return "a batch: this server takes one message per line" if message else "an empty batch"
    if not isinstance(message, dict):
        return "not a JSON-RPC message (a JSON object)"
    fields = cast(dict[str, Any], message)
    # null is an id only for an error answering what had no readable id (the client's parse error)
    if "id" in fields and not _is_id(fields["id"]) and not (fields["id"] is None and "error" in fields):
        return "id must be a string or an integer"
    if fields.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if "method" in fields and not isinstance(fields["method"], str):
        return "method must be a string"
    if "method" in fields and fields.get("params") is not None and not isinstance(fields["params"], dict):
        return "params must be an object"
    if "method" not in fields and not ("result" in fields or "error" in fields):
        return "no method (nor a result or an error)"
    return None


def _refuse(message: object, reason: str) -> Refused:
    """Refuse a message: answered with its id when it is a request (a readable one, else null), not
    answered at all when it is a notification or a response."""
    if isinstance(message, dict):
        fields = cast(dict[str, Any], message)
        if "id" not in fields and isinstance(fields.get("method"), str):
            return Refused(f"a notification: {reason}", None)
        if "method" not in fields and ("result" in fields or "error" in fields):
            return Refused(f"a response: {reason}", None)
        raw_id = fields.get("id")
    else:
        raw_id = None
    return Refused(reason, _error(types.INVALID_REQUEST, f"Invalid Request: {reason}", raw_id))


def _unparsed(text: str, why: str) -> Refused:
    """A line the JSON parser refused: invalid JSON, or JSON it will not hold (too deep, lone surrogates)."""
    if "recursion limit" in why:
        return _refuse(_top_level_members(text), f"nested deeper than {MAX_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(text):
        try:
            repaired = _unknown_id_if_repaired(
                pydantic_core.from_json(_without_lone_surrogates(text), allow_inf_nan=False)
            )
        except ValueError:
            pass  # not only that: a parse error
        else:
            lone = "a string holds a lone surrogate escape, which is no Unicode text"
            return _refuse(repaired, _problem(repaired) or lone)
    return _parse_error(f"not JSON ({why})")


def _parse_error(reason: str) -> Refused:
    return Refused(reason, _error(types.PARSE_ERROR, f"Parse error: {reason}", None))


def _error(code: int, message: str, raw_id: object) -> types.JSONRPCError:
    request_id = cast(types.RequestId, raw_id) if _is_id(raw_id) else None
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


def _is_id(value: object) -> bool:
    # bool is an int to Python, not to JSON; and a lone surrogate would make the answer unwritable
    if isinstance(value, str):
        return value.isascii() or not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _without_lone_surrogates(text: str) -> str:
    """``text`` with every lone surrogate escape replaced by ``\\ufffd`` (pairs and other escapes kept)."""
    return _PAIR_OR_LONE_SURROGATE_OR_ESCAPE.sub(
        lambda m: "\\ufffd" if len(m.group()) == 6 else m.group(), text
    )


def _unknown_id_if_repaired(message: object) -> object:
    """A repaired message, with its id unknown (``...``) if the id itself held a lone surrogate: the
    client's id cannot be echoed, and the repaired one is not the client's."""
    if not isinstance(message, dict):
        return message
    fields = cast(dict[str, Any], message)
    return {**fields, "id": ...} if "\ufffd" in str(fields.get("id")) else fields


def _top_level_members(text: str) -> dict[str, object] | None:
    """The top-level members of a JSON object that cannot be parsed whole (too deep, or cut short):
    string and integer values as they are, any other value as ``...``; None if the text is no object.

    A walk over tokens with a depth count, so no depth of nesting can exhaust a stack. An id the walk
    did not reach (the text ends first, or _SCAN_TOKENS are walked) is ``...``, unknown: so a request
    whose id is out of reach is still answered (with a null id), never taken for a notification.
    """
    if not text.lstrip().startswith("{"):
        return None
    members: dict[str, object] = {}
    depth = 0
    key: str | None = None
    for count, token in enumerate(_TOKEN.finditer(text)):
        mark = token.group()[0]
        if count == _SCAN_TOKENS:
            break
        if mark in "{[":
            depth += len(token.group())
        elif mark in "}]":
            depth -= len(token.group())
            if depth <= 0:
                return members
        elif depth == 1:
            key = _member_token(text, token, key, members)
    members.setdefault("id", ...)
    return members


def _member_token(text: str, token: re.Match[str], key: str | None, members: dict[str, object]) -> str | None:
    """One comma, colon or string at an object's top level: a key opens a member, its colon records the
    member's value, a comma closes it. The key open afterwards (None between members)."""
    mark = token.group()[0]
    if mark == ",":
        return None
    if mark == ":" and key is not None:
        members[key] = _id_value(text, token.end())
    elif mark == '"' and key is None:
        return _decoded(token.group())
    return key


def _id_value(text: str, at: int) -> object:
    value = _ID_VALUE.match(text, at)
    if value is None:
        return ...
    if value.group(1).startswith('"'):
        return _decoded(value.group(1))
    return int(value.group(1))


def _decoded(literal: str) -> str:
    try:
        return cast(str, json.loads(literal))
    except ValueError:
        return ""
