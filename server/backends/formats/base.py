"""What every output format does: show the run on the task's sink while the CLI runs (a status line with
the bytes so far, unless the format streams), say text into the partial output up to ``MAX_OUTPUT_BYTES``,
record usage (zero tokens for a run that reported none: ``settle``), and the failures every format
raises: a CLI that exited badly, or printed no answer where its format says the answer is."""

from __future__ import annotations

import math
import signal
from typing import ClassVar, Final

import anyio

from ...core.errors import TaskFailure
from ...core.models import SubagentResult, Tokens
from ...core.state import ErrorKind
from .. import TaskSink
from .streams import MAX_OUTPUT_BYTES, Outcome

DOCTOR: Final = "Check that it runs and is logged in: run `fanout-mcp doctor`."
_STATUS_EVERY_S: Final = 1.0


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


def check_exit(out: Outcome) -> None:
    if out.status == 0:
        return
    if out.status < 0:
        what = f"`{out.program}` was killed by {_signal_name(-out.status)}"
    else:
        what = f"`{out.program}` exited with status {out.status}"
    tail = out.stderr[-2000:].strip()
    said = f": {tail}" if tail else " and wrote nothing to stderr"
    raise TaskFailure(ErrorKind.COMMAND_FAILED, f"{what}{said}\n{DOCTOR}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def unreadable(out: Outcome, expected: str) -> TaskFailure:
    cut = " (its output was cut at 4 MiB)" if out.cut else ""
    return TaskFailure(
        ErrorKind.COMMAND_FAILED,
        f"`{out.program}` did not print {expected}{cut}. Its output began: {out.stdout[:300]!r}. Check the "
        "command's output and field in the server's configuration.",
    )
