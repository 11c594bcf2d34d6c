"""Server-sent events cut from byte chunks, wherever the chunks end."""

from __future__ import annotations

import pytest

from server.backends.sse import EventFrames

Events = list[tuple[bytes, bytes]]

STREAM = (
    ": a comment first\n"
    "event: message_start\n"
    'data: {"a": 1}\n'
    "\n"
    "event: ping\r\n"
    "data:{}\r\n"
    "\r\n"
    "event: content_block_delta\r"
    'data: {"text": "caf\u00e9 \u65e5\u672c \U0001f389"}\r'
    "\r"
    "event: multi\n"
    'data: {"x":\n'
    "data: 2}\n"
    "id: 7\n"
    "retry: 100\n"
    "\n"
    "event: message_stop\n"
    "\n"
    'data: {"no": "name"}\n'
    "\n"
    "event:  two spaces\n"
    "data\n"
    "\n"
).encode()

EXPECTED: Events = [
    (b"message_start", b'{"a": 1}'),
    (b"ping", b"{}"),
    (b"content_block_delta", '{"text": "caf\u00e9 \u65e5\u672c \U0001f389"}'.encode()),
    (b"multi", b'{"x":\n2}'),
    (b"message_stop", b""),
    (b"", b'{"no": "name"}'),
    (b" two spaces", b""),
]


def read(chunks: list[bytes]) -> Events:
    frames = EventFrames()
    events = [event for chunk in chunks for event in frames.feed(chunk)]
    return events + frames.end()


def test_a_stream_in_one_chunk_gives_every_event_with_its_name_and_data() -> None:
    assert read([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_the_events_are_the_same_in_chunks_of_any_size(size: int) -> None:
    assert read([STREAM[i : i + size] for i in range(0, len(STREAM), size)]) == EXPECTED


def test_the_events_are_the_same_wherever_one_cut_falls() -> None:
    # Every cut: inside a CR LF, between the bytes of one UTF-8 character, inside a blank line.
    for cut in range(len(STREAM) + 1):
        assert read([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_an_event_without_its_blank_line_is_never_handed_out() -> None:
    assert read([b"event: message_stop\ndata: {}\n"]) == []
    assert read([b"event: a\ndata: 1\n\nevent: b\ndata: 2"]) == [(b"a", b"1")]


@pytest.mark.parametrize("chunks", [[b"event: a\rdata: 1\r\r"], [b"event: a\rdata: 1\r", b"\r"]])
def test_a_cr_at_the_very_end_still_ends_its_line(chunks: list[bytes]) -> None:
    assert read(chunks) == [(b"a", b"1")]
