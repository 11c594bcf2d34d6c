"""The check of one line of stdin: what is passed to the SDK, what is answered with which error and id,
and what is dropped unanswered (the edges the stdio tests do not reach)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tools.stdio.frames import MAX_DEPTH, Accepted, Refused, check_line, refuse_long_line


def request(params: str, request_id: str = "7", method: str = '"tools/call"') -> bytes:
    return f'{{"jsonrpc":"2.0","id":{request_id},"method":{method},"params":{params}}}'.encode()


def nested(levels: int) -> str:
    """``params`` holding arrays such that the whole message is ``levels`` deep."""
    inner = levels - 2  # the message object and params
    return '{"a":' + "[" * inner + "]" * inner + "}"


def answer(verdict: Accepted | Refused | None) -> tuple[int, Any]:
    assert isinstance(verdict, Refused) and verdict.answer is not None, verdict
    return verdict.answer.error.code, verdict.answer.id


def test_a_request_nested_to_the_parsers_limit_is_passed_on_and_one_level_deeper_is_refused_with_its_id() -> (
    None
):
    assert isinstance(check_line(request(nested(MAX_DEPTH))), Accepted)
    assert answer(check_line(request(nested(MAX_DEPTH + 1)))) == (-32600, 7)


def test_the_id_of_a_request_too_deep_to_parse_is_read_where_it_stands() -> None:
    id_last = ('{"jsonrpc":"2.0","method":"tools/call","params":' + nested(300) + ',"id":"last"}').encode()
    assert answer(check_line(id_last)) == (-32600, "last")
    with_strings = request('{"s":"]]}},\\"id\\":1","a":' + nested(300) + "}", request_id='"x"')
    assert answer(check_line(with_strings)) == (-32600, "x")


def test_a_request_whose_id_is_out_of_reach_is_still_answered_with_a_null_id() -> None:
    padded = '{"a":[' + "[]," * 200_000 + nested(300) + "]}"
    line = ('{"jsonrpc":"2.0","method":"tools/call","params":' + padded + ',"id":9}').encode()
    assert answer(check_line(line)) == (-32600, None)


def test_a_notification_too_deep_or_malformed_is_dropped_unanswered() -> None:
    for line in [
        b'{"jsonrpc":"2.0","method":"notifications/progress","params":' + nested(300).encode() + b"}",
        b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}',
        b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"\\udc00"}}',
    ]:
        verdict = check_line(line)
        assert isinstance(verdict, Refused) and verdict.answer is None, verdict


def test_surrogate_pairs_and_escaped_backslashes_are_text_and_only_a_lone_surrogate_is_refused() -> None:
    assert isinstance(check_line(request('{"s":"\\ud83d\\ude00"}')), Accepted)  # a pair: one emoji
    assert isinstance(check_line(request('{"s":"\\\\ud800"}')), Accepted)  # a backslash, then letters
    for lone in ['"\\ud800"', '"\\udc00x"', '"\\ud800\\ud800\\udc00"', '"\\\\\\ud800"']:
        assert answer(check_line(request('{"s":' + lone + "}"))) == (-32600, 7), lone


def test_an_id_that_is_no_unicode_text_is_answered_as_null() -> None:
    assert answer(check_line(request("{}", request_id='"\\ud800"'))) == (-32600, None)


def test_a_long_line_is_answered_with_the_id_from_its_head_or_with_null() -> None:
    head = b'{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"name":"x","arguments":{"a":"xxxx'
    assert answer(refuse_long_line(head, 100)) == (-32600, "big")
    assert answer(refuse_long_line(b'{"jsonrpc":"2.0","method":"tools/call","params":{"a":"xx', 100)) == (
        -32600,
        None,
    )
    assert answer(refuse_long_line(b'[{"jsonrpc":"2.0","id":1', 100)) == (-32600, None)


@pytest.mark.parametrize(
    "response",
    [
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": "s", "error": {"code": -1, "message": "no"}},
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}},
    ],
)
def test_a_response_is_passed_on(response: dict[str, Any]) -> None:
    assert isinstance(check_line(json.dumps(response).encode()), Accepted)


@pytest.mark.parametrize(
    "response",
    [
        {"jsonrpc": "2.0", "id": 1, "result": 5},
        {"jsonrpc": "2.0", "id": 1, "error": "no"},
        {"jsonrpc": "1.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": [1], "result": {}},
    ],
)
def test_a_malformed_response_is_dropped_unanswered(response: dict[str, Any]) -> None:
    verdict = check_line(json.dumps(response).encode())
    assert isinstance(verdict, Refused) and verdict.answer is None


def test_blank_lines_are_skipped_and_crlf_lines_are_read() -> None:
    assert check_line(b"\n") is None and check_line(b"  \r\n") is None
    assert isinstance(check_line(request("{}") + b"\r\n"), Accepted)
