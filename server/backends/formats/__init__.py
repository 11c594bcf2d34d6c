"""What an agent CLI printed, and how each output format turns it into an answer.

``Stdout`` keeps the first ``MAX_OUTPUT_BYTES`` of a CLI's stdout (and hands every chunk and ended line
on as it arrives); ``Tail`` keeps the end of its stderr. A ``Format`` shows the run on the task's sink
while it runs and reads the ``Outcome`` into a ``SubagentResult``, or a ``TaskFailure`` that says what
went wrong. ``text``, ``jsonl``, ``claude`` and ``codex`` stream what the CLI says into the partial
output as it comes (at most ``MAX_OUTPUT_BYTES`` of it); ``json``, one document read at the end, shows a
status line with the bytes so far instead. A run that started its CLI and reported no usage (a format
without usage in its output, or a CLI killed, timed out or failed before printing it) reports zero tokens
at its end (``settle``), so that its cost shows as unknown rather than free.

A module per job: ``streams`` (what a CLI printed), ``base`` (what every format does, and the failures
they share), ``plain`` (``text``, ``json``, ``jsonl``: the operator's own commands), ``claude``,
``codex``, and ``values`` (reading a CLI's JSON without trusting its shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ...config.commands import OutputFormat
from .base import Format
from .claude import ClaudeFormat
from .codex import CodexFormat
from .plain import JsonFormat, JsonLinesFormat, TextFormat
from .streams import MAX_OUTPUT_BYTES, STDERR_TAIL_CHARS, Outcome, Stdout, Tail

FORMATS: Final[Mapping[OutputFormat, type[Format]]] = {
    "text": TextFormat,
    "json": JsonFormat,
    "jsonl": JsonLinesFormat,
    "claude": ClaudeFormat,
    "codex": CodexFormat,
}

__all__ = ["FORMATS", "MAX_OUTPUT_BYTES", "STDERR_TAIL_CHARS", "Format", "Outcome", "Stdout", "Tail"]
