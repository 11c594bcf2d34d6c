"""Codex's output: ``codex exec --json``, JSON events one a line; the answer is the last agent message."""

from __future__ import annotations

from collections.abc import Mapping

from ...core.errors import TaskFailure
from ...core.models import SubagentResult, Tokens
from ...core.state import ErrorKind
from .base import DOCTOR, Format, check_exit, unreadable
from .streams import Outcome
from .values import int_of, json_object, mapping


class CodexFormat(Format):
    """``codex exec --json``: JSON events, one a line; the answer is the last agent message."""

    reads_lines = True
    _answer: str | None = None
    _failure: str | None = None

    def show(self, text: str, received: int) -> None:
        pass  # the events show themselves, as they end (see line)

    def line(self, text: str) -> None:
        event = json_object(text)
        kind, message = event.get("type"), event.get("message")
        if kind == "item.completed":
            self._item(mapping(event.get("item")))
        elif kind == "turn.completed":  # said at once: a later cancel must not lose what was billed
            self.report(self._model, _codex_tokens(mapping(event.get("usage"))))
        elif kind == "turn.failed":
            self._fail(mapping(event.get("error")).get("message"))
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
            raise TaskFailure(ErrorKind.COMMAND_FAILED, f"Codex failed: {self._failure[:2000]}. {DOCTOR}")
        check_exit(out)
        if self._answer is None:
            raise unreadable(out, "an agent_message among Codex's JSON events (`codex exec --json`)")
        return SubagentResult(self._answer, self._model, "end_turn")


def _codex_tokens(usage: Mapping[str, object]) -> Tokens:
    cached = int_of(usage.get("cached_input_tokens"))  # a part of input_tokens, not on top of it
    return Tokens(
        input_tokens=max(0, int_of(usage.get("input_tokens")) - cached),
        output_tokens=int_of(usage.get("output_tokens")),
        cache_read_tokens=cached,
    )
