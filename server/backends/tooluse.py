"""The workspace tool loop's pieces for the Messages API: a turn's tool uses (``answer_stream.py`` reads
them from a streamed answer), and the turns that carry them and their answers back.

A subagent with tools answers in turns: each turn is one Messages call; while its answer asks for tools
(``stop_reason: tool_use``), the tools run (``Workspace.call``, in a worker thread), their answers go
back as ``tool_result`` blocks, and the next turn starts. ``MAX_TURNS`` bounds the loop: the last turn
is sent with ``tool_choice: none``, so the subagent must answer with what it has.

Every turn's text and a line per tool use stay in the task's partial output: a retry inside the loop
drops only the failed attempt's own text (``LoopSink``).

A cancelled task does not wait for its tools: ``run_uses`` leaves the worker thread at once and sets
the stop event it gave it, which a search checks at every file and line, so the thread ends soon too.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Final

import anyio

from ..core.models import SubagentResult, Tokens
from ..core.state import ErrorKind
from . import TaskSink
from .workspace import TOOLS, Stopped, ToolAnswer, Workspace

MAX_TURNS: Final = 20
# Every turn resends the tool answers so far: once they pass this (about 100k tokens), the next turn is
# the last, so that a long look around ends in an answer, not in a request the API refuses as too large.
MAX_HISTORY_CHARS: Final = 400_000
_FULL: Final = (
    f"not run: this task's tool answers reached their limit ({MAX_HISTORY_CHARS:,} characters); answer "
    "now with what you have found"
)


@dataclass(slots=True)
class ToolUse:
    id: str
    name: str
    raw_input: str = ""  #: the JSON as it streamed in

    def arguments(self) -> dict[str, Any] | None:
        """The parsed input, or None when it is not a JSON object."""
        try:
            value = json.loads(self.raw_input or "{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None  # pyright: ignore[reportUnknownVariableType]


@dataclass(slots=True)
class Reply:
    """One turn's answer: its text (the task's answer if it asks for no tool) and its tool uses."""

    result: SubagentResult
    uses: list[ToolUse] = field(default_factory=list[ToolUse])

    def assistant_turn(self) -> dict[str, Any]:
        """The answer as the assistant message the next turn repeats."""
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": self.result.text}] if self.result.text else []
        )
        content += [
            {"type": "tool_use", "id": use.id, "name": use.name, "input": use.arguments() or {}}
            for use in self.uses
        ]
        return {"role": "assistant", "content": content}


class LoopSink:
    """The task's sink as the tool loop uses it: what earlier turns showed (their text, a line per tool
    use) is kept, and put back after a retry, which drops only the failed attempt's own text."""

    def __init__(self, sink: TaskSink) -> None:
        self._sink = sink
        self._kept = ""  #: shown by the turns before this one
        self._turn: list[str] = []  #: shown by this turn's attempt so far

    @property
    def task_id(self) -> str:
        return self._sink.task_id

    def response_started(self) -> None:
        self._sink.response_started()

    def append(self, text: str) -> None:
        self._turn.append(text)
        self._sink.append(text)

    def restart(self, note: str, cause: ErrorKind) -> None:
        self._turn.clear()
        self._sink.restart(note, cause)
        if self._kept:
            self._sink.append(self._kept)

    def status(self, text: str) -> None:
        self._sink.status(text)

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        self._sink.add_usage(model, tokens, cost_usd)

    def usage_so_far(self, model: str, tokens: Tokens) -> None:
        self._sink.usage_so_far(model, tokens)

    def keep(self) -> None:
        """The turn is over: what it showed stays, whatever later turns do."""
        self._kept += "".join(self._turn)
        self._turn.clear()


def tool_params(turn: int, history_chars: int, tools: list[dict[str, Any]] = TOOLS) -> dict[str, Any]:
    """The tools of a turn; the last one (by count, or by the size of the answers so far) may not use
    them."""
    params: dict[str, Any] = {"tools": tools}
    if turn >= MAX_TURNS or history_chars >= MAX_HISTORY_CHARS:
        params["tool_choice"] = {"type": "none"}
    return params


async def run_uses(workspace: Workspace, uses: list[ToolUse], history_chars: int = 0) -> dict[str, Any]:
    """The user turn with the results of ``uses``, answered in a worker thread that stops on cancel;
    ``history_chars`` is how much of ``MAX_HISTORY_CHARS`` earlier turns' answers took."""
    room = MAX_HISTORY_CHARS - history_chars
    stop = threading.Event()
    try:
        return await anyio.to_thread.run_sync(
            answer_uses, workspace, uses, stop, room, abandon_on_cancel=True
        )
    finally:
        stop.set()  # after a cancel the thread is abandoned: this is what ends its work


def answer_uses(
    workspace: Workspace,
    uses: list[ToolUse],
    stop: threading.Event,
    room: int,
) -> dict[str, Any]:
    """Run each tool use (blocking: call from a worker thread); the user turn with their results. Once
    the answers fill ``room`` characters, the uses left are answered with a refusal, not run: many uses
    in one turn must not make the next request too large.

    Raises:
        Stopped: ``stop`` was set; the results would go nowhere.
    """
    results: list[dict[str, Any]] = []
    for use in uses:
        if stop.is_set():
            raise Stopped
        arguments = use.arguments()
        if room <= 0:
            answer = ToolAnswer(_FULL, is_error=True)
        elif arguments is None:
            answer = ToolAnswer(f"the input of {use.name} was not a JSON object; try again", is_error=True)
        else:
            answer = workspace.call(use.name, arguments, stop)
        room -= len(answer.text)
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": use.id, "content": answer.text}
        if answer.is_error:
            result["is_error"] = True
        results.append(result)
    return {"role": "user", "content": results}


def describe(use: ToolUse) -> str:
    """The line a tool use adds to the task's partial output."""
    return f"\n· {Workspace.describe(use.name, use.arguments() or {})}\n"
