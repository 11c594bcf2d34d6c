"""Server-sent events framed from a byte stream, as the HTML standard defines them, for the hot path.

The SDK's decoder splits every chunk into lines, decodes each line and builds an event object per
event; at a thousand streamed answers that was a fifth of the server's CPU. This one splits the bytes at
blank lines once per chunk and hands out each event's name and data as bytes (``json.loads`` takes
bytes), which is all a Messages answer needs.

Lines end in CR LF, LF or CR; a CR at the end of a chunk is held back, since the LF that completes it may
start the next chunk. A field's value loses one leading space; ``data`` lines join with LF; comments
(``:``) and the fields nobody here reads (``id``, ``retry``, unknown ones) are skipped. An event is only
complete at its blank line: what the stream leaves after the last one is never handed out (``end``).
"""

from __future__ import annotations

from typing import Final

_BLANK_LINE: Final = b"\n\n"


class EventFrames:
    """Cuts a stream of byte chunks into events: ``feed`` each chunk, get the events it completed."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""  #: the start of an event not complete yet (line ends already LF)

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        """The events that ``chunk`` completes, as (name, data); the name is b"" when none was given."""
        buffer = self._rest + chunk if self._rest else chunk
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # perhaps the first half of a CR LF
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if _BLANK_LINE not in buffer:
            self._rest = buffer + held
            return []
        blocks = buffer.split(_BLANK_LINE)
        self._rest = blocks.pop() + held
        return [_event(block) for block in blocks if block]

    def end(self) -> list[tuple[bytes, bytes]]:
        """The stream ended: the event a held CR completes (``data: x`` CR CR), if it does."""
        return self.feed(b"\n") if self._rest.endswith(b"\r") else []


def _event(block: bytes) -> tuple[bytes, bytes]:
    name = b""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value
    return name, b"\n".join(data)
