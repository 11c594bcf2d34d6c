"""The formats of the operator's own commands: ``text`` (all of stdout, streamed), ``json`` (one document
read at the end; ``field`` is a dotted path to the answer) and ``jsonl`` (one JSON object a line; the
answer is ``field`` of the last line that has it, streamed as lines arrive)."""

from __future__ import annotations

from ...core.models import SubagentResult
from .base import Format, check_exit, unreadable
from .streams import Outcome
from .values import as_text, dig, json_object, loads


class TextFormat(Format):
    def show(self, text: str, received: int) -> None:
        if text:
            self._sink.append(text)

    def result(self, out: Outcome) -> SubagentResult:
        check_exit(out)
        if out.cut:
            return SubagentResult(
                f"{out.stdout.rstrip()}\n\n[output cut at 4 MiB]", self._model, "output_cut"
            )
        return SubagentResult(out.stdout.rstrip(), self._model, "end_turn")


class JsonFormat(Format):
    def result(self, out: Outcome) -> SubagentResult:
        check_exit(out)
        answer = dig(loads(out.stdout), self._field)
        if answer is None:
            raise unreadable(out, f"one JSON document with a {self._field!r} field")
        return SubagentResult(as_text(answer), self._model, "end_turn")


class JsonLinesFormat(Format):
    reads_lines = True
    _answer: object = None

    def line(self, text: str) -> None:
        answer = dig(json_object(text), self._field)
        if answer is not None:
            self._answer = answer
            self.say(as_text(answer))

    def result(self, out: Outcome) -> SubagentResult:
        check_exit(out)
        if self._answer is None:
            raise unreadable(out, f"a JSON line with a {self._field!r} field")
        return SubagentResult(as_text(self._answer), self._model, "end_turn")
