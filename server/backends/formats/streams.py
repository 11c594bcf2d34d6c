"""What an agent CLI printed: ``Stdout`` keeps the first ``MAX_OUTPUT_BYTES`` of its stdout (and hands
every chunk and ended line on as it arrives), ``Tail`` keeps the end of its stderr, and ``Outcome`` is
all of it once the CLI has ended."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

MAX_OUTPUT_BYTES: Final = 4 * 1024 * 1024
STDERR_TAIL_CHARS: Final = 4000


@dataclass(frozen=True, slots=True)
class Outcome:
    program: str
    status: int  #: the exit status; negative: killed by that signal
    stdout: str  #: its first MAX_OUTPUT_BYTES, decoded
    cut: bool  #: stdout was longer than that
    stderr: str  #: the last STDERR_TAIL_CHARS characters
    long_lines: int = 0  #: lines over MAX_OUTPUT_BYTES, dropped unread (line-based formats only)


class Tail:
    """The last ``size`` characters of a stream: where a failing CLI says why."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def feed(self, data: bytes) -> None:
        self.text = (self.text + self._decoder.decode(data))[-self._size :]


class Stdout:
    """Stdout as it arrives: its first MAX_OUTPUT_BYTES decoded, each chunk and each ended line handed on.

    Lines are split as bytes (a newline byte never occurs inside a UTF-8 character), past the cap too: a
    line-based format still finds its answer at the end of a long run. A line longer than the cap is
    dropped whole (counted in ``long_lines``), never handed on in part.
    """

    def __init__(
        self,
        on_chunk: Callable[[str, int], None] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self._line = bytearray()
        self._skipping = False  #: the line so far is over the cap: drop the rest of it too
        self._on_chunk = on_chunk
        self._on_line = on_line
        self.received = 0
        self.long_lines = 0

    @property
    def cut(self) -> bool:
        return self.received > MAX_OUTPUT_BYTES

    def feed(self, data: bytes) -> None:
        room = max(0, MAX_OUTPUT_BYTES - self.received)
        self.received += len(data)
        text = self._decoder.decode(data[:room]) if room else ""
        self._parts.append(text)
        if self._on_line is not None:
            self._split(data)
        if self._on_chunk is not None:
            self._on_chunk(text, self.received)

    def close(self) -> str:
        """The kept text, once the stream ended (a last line without a newline is handed on too)."""
        self._parts.append(self._decoder.decode(b"", final=True))
        if self._line or self._skipping:
            self._end_line(b"")
        return "".join(self._parts)

    def _split(self, data: bytes) -> None:
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._end_line(data[start:end])
            start = end + 1
        if not self._skipping:
            self._line += data[start:]
            if len(self._line) > MAX_OUTPUT_BYTES:
                self._line.clear()
                self._skipping = True

    def _end_line(self, last: bytes) -> None:
        too_long = self._skipping or len(self._line) + len(last) > MAX_OUTPUT_BYTES
        line = b"" if too_long else bytes(self._line + last)
        self._line.clear()
        self._skipping = False
        if too_long:
            self.long_lines += 1
        elif self._on_line is not None:
            self._on_line(line.decode(errors="replace"))
