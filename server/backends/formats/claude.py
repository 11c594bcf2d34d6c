"""Claude Code's output: ``claude -p --output-format stream-json --verbose`` (or its single ``json``
result), with the answer, the usage and the cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

from ...core.errors import TaskFailure
from ...core.models import SubagentResult, Tokens
from ...core.state import ErrorKind
from .base import DOCTOR, Format, check_exit, unreadable
from .streams import Outcome
from .values import int_of, json_object, loads, mapping, number


class ClaudeFormat(Format):
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
        event = json_object(text)
        kind = event.get("type")
        if kind in ("system", "assistant", "user", "result"):
            self._events = True
        if kind == "system" and event.get("subtype") == "init" and isinstance(event.get("model"), str):
            self._init_model = cast(str, event["model"])
        elif kind == "assistant":
            for block in _content(mapping(event.get("message"))):
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
            tokens = _claude_tokens(mapping(report.get("usage")))
            self.report(self._model_of(report), tokens, number(report.get("total_cost_usd")))

    def _model_of(self, report: Mapping[str, object]) -> str:
        return next(iter(mapping(report.get("modelUsage"))), self._init_model or self._model)

    def result(self, out: Outcome) -> SubagentResult:
        report = self._report
        if report is None and (report := _claude_report(out.stdout)) is not None:
            self._report_usage(report)  # --output-format json: read only now
        if report is None:
            check_exit(out)
            if out.long_lines:
                raise TaskFailure(
                    ErrorKind.COMMAND_FAILED,
                    "Claude Code's answer was longer than the 4 MiB the server reads of one line of its "
                    "output, so it was lost. Ask for a shorter answer, or split the task into smaller ones.",
                )
            raise unreadable(out, "a result event (`claude -p --output-format stream-json --verbose`)")
        answer, subtype = report.get("result"), report.get("subtype")
        # Claude Code may exit 1 and still print its result object: its message beats a bare status.
        if report.get("is_error") is True or subtype != "success":
            said = answer.strip()[:2000] if isinstance(answer, str) and answer.strip() else "no message"
            raise TaskFailure(ErrorKind.COMMAND_FAILED, f"Claude Code failed ({subtype}): {said}. {DOCTOR}")
        check_exit(out)
        if not isinstance(answer, str):
            raise unreadable(out, "Claude Code's result event with a string 'result'")
        stop_reason = report.get("stop_reason")
        model = self._model_of(report)
        return SubagentResult(answer, model, stop_reason if isinstance(stop_reason, str) else "end_turn")


def _claude_report(stdout: str) -> Mapping[str, object] | None:
    document = loads(stdout)
    if isinstance(document, list):  # with --verbose: every message, the result last
        results = [item for item in cast(list[object], document) if mapping(item).get("type") == "result"]
        document = results[-1] if results else None
    report = mapping(document)
    return report if report.get("type") == "result" else None


def _content(message: Mapping[str, object]) -> list[Mapping[str, object]]:
    content = message.get("content")
    return [mapping(block) for block in cast(list[object], content)] if isinstance(content, list) else []


_TOOL_ARGUMENTS: Final = ("file_path", "path", "pattern", "command", "url", "query", "description")


def _tool_line(block: Mapping[str, object]) -> str:
    """A tool use as one short line, e.g. ``· Read src/app.py``."""
    name, arguments = block.get("name"), mapping(block.get("input"))
    shown = next((v for k in _TOOL_ARGUMENTS if isinstance(v := arguments.get(k), str) and v.strip()), "")
    shown = " ".join(shown.split())
    shown = shown if len(shown) <= 100 else f"{shown[:99]}…"
    return f"· {name if isinstance(name, str) else 'tool'} {shown}".rstrip()


def _claude_tokens(usage: Mapping[str, object]) -> Tokens:
    return Tokens(
        input_tokens=int_of(usage.get("input_tokens")),
        output_tokens=int_of(usage.get("output_tokens")),
        cache_write_tokens=int_of(usage.get("cache_creation_input_tokens")),
        cache_read_tokens=int_of(usage.get("cache_read_input_tokens")),
    )
