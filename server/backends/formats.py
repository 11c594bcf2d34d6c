"""What an agent CLI printed, and how each output format turns it into an answer.

``Stdout`` keeps the first ``MAX_OUTPUT_BYTES`` of a CLI's stdout (and hands every chunk and ended line
on as it arrives); ``Tail`` keeps the end of its stderr. A ``Format`` shows the run on the task's sink
while it runs and reads the ``Outcome`` into a ``SubagentResult``, or a ``TaskFailure`` that says what
went wrong. ``text``, ``jsonl``, ``claude`` and ``codex`` stream what the CLI says into the partial
output as it comes (at most ``MAX_OUTPUT_BYTES`` of it); ``json``, one document read at the end, shows a
status line with the bytes so far instead. A run that started its CLI and reported no usage (a format
without usage in its output, or a CLI killed, timed out or failed before printing it) reports zero tokens
at its end (``settle``), so that its cost shows as unknown rather than free.
"""

from __future__ import annotations

import codecs
import json
import math
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, cast

import anyio

from ..config.commands import OutputFormat
from ..core.errors import TaskFailure
from ..core.models import SubagentResult, Tokens
from ..core.state import ErrorKind
from . import TaskSink

MAX_OUTPUT_BYTES: Final = 4 * 1024 * 1024
STDERR_TAIL_CHARS: Final = 4000
_STATUS_EVERY_S: Final = 1.0
_DOCTOR: Final = "Check that it runs and is logged in: run `fanout-mcp doctor`."


# --- what it printed ----------------------------------------------------------------------------


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


# --- output formats -----------------------------------------------------------------------------


class Format:
    """How one output format shows on the sink while the CLI runs, and becomes the answer after."""

    reads_lines: ClassVar[bool] = False

    def __init__(self, sink: TaskSink, model: str, field: str) -> None:
        self._sink = sink
        self._model = model  #: the model asked for, else the command's name
        self._field = field
        self._started = False
        self._ran = False  #: its CLI started
        self._reported = False  #: it reported usage
        self._next_status = -math.inf
        self._shown = 0  #: bytes said into the partial output

    def process_started(self) -> None:
        self._ran = True

    def take(self, text: str, received: int) -> None:
        """A chunk of stdout arrived: ``text`` is what of it is kept, ``received`` the bytes so far."""
        if not self._started:
            self._started = True
            self._sink.response_started()
        self.show(text, received)

    def show(self, text: str, received: int) -> None:
        # Output read only at the end shows nothing partial, but that the CLI is at work is worth saying.
        now = anyio.current_time()
        if now >= self._next_status:
            self._next_status = now + _STATUS_EVERY_S
            self._sink.status(f"running: {received} bytes of output so far")

    def line(self, text: str) -> None:
        """One ended line of stdout (only for a format that ``reads_lines``)."""

    def say(self, text: str, separator: str = "\n\n") -> None:
        """Add ``text`` to the partial output (after ``separator`` unless it is the first thing said), up to
        MAX_OUTPUT_BYTES in all: a CLI that talks without end cannot fill the server's memory."""
        room = MAX_OUTPUT_BYTES - self._shown
        if room <= 0 or not text:
            return
        said = separator + text if self._shown else text
        size = len(said.encode())
        self._shown += size
        if size > room:
            cut = said.encode()[:room].decode(errors="ignore")
            self._sink.append(cut + "\n\n[partial output cut at 4 MiB]")
        else:
            self._sink.append(said)

    def report(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        self._reported = True
        self._sink.add_usage(model, tokens, cost_usd)

    def settle(self) -> None:
        """However the run ended: a CLI that ran and reported no usage is recorded as a call of unknown
        cost (zero tokens, no price: null unless the price table knows the model), never as a free $0."""
        if self._ran and not self._reported:
            self.report(self._model, Tokens())

    def result(self, out: Outcome) -> SubagentResult:
        raise NotImplementedError


class _Text(Format):
    def show(self, text: str, received: int) -> None:
        if text:
            self._sink.append(text)

    def result(self, out: Outcome) -> SubagentResult:
        _check_exit(out)
        if out.cut:
            return SubagentResult(
                f"{out.stdout.rstrip()}\n\n[output cut at 4 MiB]", self._model, "output_cut"
            )
        return SubagentResult(out.stdout.rstrip(), self._model, "end_turn")


class _Json(Format):
    def result(self, out: Outcome) -> SubagentResult:
        _check_exit(out)
        answer = _dig(_loads(out.stdout), self._field)
        if answer is None:
            raise _unreadable(out, f"one JSON document with a {self._field!r} field")
        return SubagentResult(_as_text(answer), self._model, "end_turn")


class _JsonLines(Format):
    reads_lines = True
    _answer: object = None

    def line(self, text: str) -> None:
        answer = _dig(_json_object(text), self._field)
        if answer is not None:
            self._answer = answer
            self.say(_as_text(answer))

    def result(self, out: Outcome) -> SubagentResult:
        _check_exit(out)
        if self._answer is None:
            raise _unreadable(out, f"a JSON line with a {self._field!r} field")
        return SubagentResult(_as_text(self._answer), self._model, "end_turn")


class _Claude(Format):
    """``claude -p --output-format stream-json --verbose``: one JSON event a line. The assistant's text and
    a line per tool use stream into the partial output; the ``result`` event holds the answer, usage and
    cost. The one result object of ``--output-format json`` is read too, at the end (nothing streams)."""

    reads_lines = True
    _report: Mapping[str, object] | None = None
    _init_model: str | None = None  #: the model the init event names
    _events = False  #: a stream-json event came

    def show(self, text: str, received: int) -> None:
        if not self._events:  # --output-format json: the bytes so far are all there is to show
            super().show(text, received)

    def line(self, text: str) -> None:
        event = _json_object(text)
        kind = event.get("type")
        if kind in ("system", "assistant", "user", "result"):
            self._events = True
        if kind == "system" and event.get("subtype") == "init" and isinstance(event.get("model"), str):
            self._init_model = cast(str, event["model"])
        elif kind == "assistant":
            for block in _content(_mapping(event.get("message"))):
                self._show_block(block)
        elif kind == "result" and self._report is None:  # billed: said at once, before any cancel
            self._report = event
            self._report_usage(event)

    def _show_block(self, block: Mapping[str, object]) -> None:
        kind, text = block.get("type"), block.get("text")
        if kind == "text" and isinstance(text, str) and text.strip():
            self.say(text)
        elif kind == "tool_use":
            self.say(_tool_line(block), "\n")

    def _report_usage(self, report: Mapping[str, object]) -> None:
        if "usage" in report or "total_cost_usd" in report:  # billed whether or not it succeeded
            tokens = _claude_tokens(_mapping(report.get("usage")))
            self.report(self._model_of(report), tokens, _number(report.get("total_cost_usd")))

    def _model_of(self, report: Mapping[str, object]) -> str:
        return next(iter(_mapping(report.get("modelUsage"))), self._init_model or self._model)

    def result(self, out: Outcome) -> SubagentResult:
        report = self._report
        if report is None and (report := _claude_report(out.stdout)) is not None:
            self._report_usage(report)  # --output-format json: read only now
        if report is None:
            _check_exit(out)
            if out.long_lines:
                raise TaskFailure(
                    ErrorKind.COMMAND_FAILED,
                    "Claude Code's answer was longer than the 4 MiB the server reads of one line of its "
                    "output, so it was lost. Ask for a shorter answer, or split the task into smaller ones.",
                )
            raise _unreadable(out, "a result event (`claude -p --output-format stream-json --verbose`)")
        answer, subtype = report.get("result"), report.get("subtype")
        # Claude Code may exit 1 and still print its result object: its message beats a bare status.
        if report.get("is_error") is True or subtype != "success":
            said = answer.strip()[:2000] if isinstance(answer, str) and answer.strip() else "no message"
            raise TaskFailure(ErrorKind.COMMAND_FAILED, f"Claude Code failed ({subtype}): {said}. {_DOCTOR}")
        _check_exit(out)
        if not isinstance(answer, str):
            raise _unreadable(out, "Claude Code's result event with a string 'result'")
        stop_reason = report.get("stop_reason")
        model = self._model_of(report)
        return SubagentResult(answer, model, stop_reason if isinstance(stop_reason, str) else "end_turn")


class _Codex(Format):
    """``codex exec --json``: JSON events, one a line; the answer is the last agent message."""

    reads_lines = True
    _answer: str | None = None
    _failure: str | None = None

    def show(self, text: str, received: int) -> None:
        pass  # the events show themselves, as they end (see line)

    def line(self, text: str) -> None:
        event = _json_object(text)
        kind, message = event.get("type"), event.get("message")
        if kind == "item.completed":
            self._item(_mapping(event.get("item")))
        elif kind == "turn.completed":  # said at once: a later cancel must not lose what was billed
            self.report(self._model, _codex_tokens(_mapping(event.get("usage"))))
        elif kind == "turn.failed":
            self._fail(_mapping(event.get("error")).get("message"))
        elif kind == "error" and not (isinstance(message, str) and message.startswith("Reconnecting")):
            self._fail(message)

    def _item(self, item: Mapping[str, object]) -> None:
        kind, text, command = item.get("type"), item.get("text"), item.get("command")
        if kind == "agent_message" and isinstance(text, str):
            self.say(text)
            self._answer = text
        elif kind == "command_execution" and isinstance(command, str):
            self._sink.status(f"ran: {command}")

    def _fail(self, message: object) -> None:
        if self._failure is None:  # the first is the cause; what follows is fallout
            self._failure = message if isinstance(message, str) and message.strip() else "no message"

    def result(self, out: Outcome) -> SubagentResult:
        if self._failure is not None:
            raise TaskFailure(ErrorKind.COMMAND_FAILED, f"Codex failed: {self._failure[:2000]}. {_DOCTOR}")
        _check_exit(out)
        if self._answer is None:
            raise _unreadable(out, "an agent_message among Codex's JSON events (`codex exec --json`)")
        return SubagentResult(self._answer, self._model, "end_turn")


FORMATS: Final[Mapping[OutputFormat, type[Format]]] = {
    "text": _Text,
    "json": _Json,
    "jsonl": _JsonLines,
    "claude": _Claude,
    "codex": _Codex,
}


def _check_exit(out: Outcome) -> None:
    if out.status == 0:
        return
    if out.status < 0:
        what = f"`{out.program}` was killed by {_signal_name(-out.status)}"
    else:
        what = f"`{out.program}` exited with status {out.status}"
    tail = out.stderr[-2000:].strip()
    said = f": {tail}" if tail else " and wrote nothing to stderr"
    raise TaskFailure(ErrorKind.COMMAND_FAILED, f"{what}{said}\n{_DOCTOR}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _unreadable(out: Outcome, expected: str) -> TaskFailure:
    cut = " (its output was cut at 4 MiB)" if out.cut else ""
    return TaskFailure(
        ErrorKind.COMMAND_FAILED,
        f"`{out.program}` did not print {expected}{cut}. Its output began: {out.stdout[:300]!r}. Check the "
        "command's output and field in the server's configuration.",
    )


def _claude_report(stdout: str) -> Mapping[str, object] | None:
    document = _loads(stdout)
    if isinstance(document, list):  # with --verbose: every message, the result last
        results = [item for item in cast(list[object], document) if _mapping(item).get("type") == "result"]
        document = results[-1] if results else None
    report = _mapping(document)
    return report if report.get("type") == "result" else None


def _content(message: Mapping[str, object]) -> list[Mapping[str, object]]:
    content = message.get("content")
    return [_mapping(block) for block in cast(list[object], content)] if isinstance(content, list) else []


_TOOL_ARGUMENTS: Final = ("file_path", "path", "pattern", "command", "url", "query", "description")


def _tool_line(block: Mapping[str, object]) -> str:
    """A tool use as one short line, e.g. ``· Read src/app.py``."""
    name, arguments = block.get("name"), _mapping(block.get("input"))
    shown = next((v for k in _TOOL_ARGUMENTS if isinstance(v := arguments.get(k), str) and v.strip()), "")
    shown = " ".join(shown.split())
    shown = shown if len(shown) <= 100 else f"{shown[:99]}…"
    return f"· {name if isinstance(name, str) else 'tool'} {shown}".rstrip()


def _claude_tokens(usage: Mapping[str, object]) -> Tokens:
    return Tokens(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_write_tokens=_int(usage.get("cache_creation_input_tokens")),
        cache_read_tokens=_int(usage.get("cache_read_input_tokens")),
    )


def _codex_tokens(usage: Mapping[str, object]) -> Tokens:
    cached = _int(usage.get("cached_input_tokens"))  # a part of input_tokens, not on top of it
    return Tokens(
        input_tokens=max(0, _int(usage.get("input_tokens")) - cached),
        output_tokens=_int(usage.get("output_tokens")),
        cache_read_tokens=cached,
    )


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _json_object(line: str) -> Mapping[str, object]:
    """The JSON object on ``line``, or an empty one (a blank line, a log line, a JSON non-object)."""
    line = line.strip()
    return _mapping(_loads(line)) if line.startswith("{") else {}


def _dig(node: object, path: str) -> object:
    """The value at a dotted ``path`` of keys (or list positions), or None."""
    for step in path.split("."):
        if isinstance(node, dict):
            node = cast(dict[str, object], node).get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(cast(list[object], node)):
            node = cast(list[object], node)[int(step)]
        else:
            return None
    return node


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _mapping(value: object) -> Mapping[str, object]:
    return cast(dict[str, object], value) if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
