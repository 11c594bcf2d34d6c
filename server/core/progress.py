"""What a backend reports while its task runs: the task's ``TaskSink``.

One per running task, made by the runner when the task starts. It holds what changes during a run: the
partial answer, the status note, why the task is retrying, the attempts and the model. It prices each
call's tokens and passes them on at once (``record_usage``): a spawn's budget and totals must see them
while the task runs. When the task ends, ``TaskTable.move`` folds the rest into the task's record and
closes the progress: from then on it ignores every report, so a backend can never change an ended task.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from ..config.pricing import PriceTable
from .models import RetryNotice, Tokens
from .state import ErrorKind

RecordUsage = Callable[[str, Tokens, "float | None"], None]


class Progress:
    """A running task's progress, as its backend reports it (a ``TaskSink``)."""

    __slots__ = (
        "_answer_in_repair",
        "_attempts",
        "_chunks",
        "_closed",
        "_group_id",
        "_label",
        "_model",
        "_note",
        "_on_retry",
        "_opens",
        "_prices",
        "_record_usage",
        "_retry_cause",
        "_task_id",
        "_unsettled",
    )

    def __init__(
        self,
        task_id: str,
        group_id: str,
        label: str,
        *,
        prices: PriceTable,
        record_usage: RecordUsage,
        on_retry: Callable[[RetryNotice], None],
        opens: anyio.Event | None = None,
    ) -> None:
        self._task_id, self._group_id, self._label = task_id, group_id, label
        self._prices = prices
        self._record_usage = record_usage
        self._on_retry = on_retry
        self._opens = opens  #: set when the answer begins: the siblings of a cache-warming lead may start
        self._chunks: list[str] = []
        self._answer_in_repair: str | None = None  #: the answer a repair call is fixing; kept if it fails
        self._closed = False
        self._note: str | None = None
        self._retry_cause: ErrorKind | None = None
        self._attempts = 1
        self._model: str | None = None
        self._unsettled: tuple[str, Tokens] | None = None  #: the call in flight's usage, not yet counted

    @property
    def task_id(self) -> str:
        return self._task_id

    @property
    def group_id(self) -> str:
        return self._group_id

    @property
    def note(self) -> str | None:
        """The latest status line, e.g. a retry after a 429."""
        return self._note

    @property
    def retry_cause(self) -> ErrorKind | None:
        """Why the task is retrying, until an answer starts again."""
        return self._retry_cause

    @property
    def attempts(self) -> int:
        """Tries so far: the first, each retry and a repair call."""
        return self._attempts

    @property
    def model(self) -> str | None:
        """The model the provider said it ran, as of the last call."""
        return self._model

    @property
    def text(self) -> str | None:
        """The answer so far (a whole answer under repair beats the start of its repair)."""
        if self._answer_in_repair is not None:
            return self._answer_in_repair
        return "".join(self._chunks) if self._chunks else None

    @property
    def revision(self) -> tuple[int, int, str | None]:
        """Changes whenever what a reader sees changes (chunks, tries, note), at no cost per report: a
        durable store saves a running task's partial output only when this moved."""
        return (len(self._chunks) + (self._answer_in_repair is not None), self._attempts, self._note)

    def close(self) -> None:
        """The task has ended: ignore every report from now on."""
        self._closed = True

    # --- TaskSink: what the backend reports -------------------------------------------------------

    def response_started(self) -> None:
        if self._closed:
            return
        self._retry_cause = None
        if self._opens is not None:
            self._opens.set()

    def append(self, text: str) -> None:
        if not self._closed:
            self._chunks.append(text)

    def restart(self, note: str, cause: ErrorKind) -> None:
        if self._closed:
            return
        self._retry_cause = cause
        self._next_attempt(note)
        self._on_retry(RetryNotice(self._task_id, self._group_id, self._label, self._attempts, cause, note))

    def status(self, text: str) -> None:
        if not self._closed:
            self._note = text

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        if self._closed:
            return
        self._model = model
        cost = cost_usd
        if cost is None and tokens != Tokens():  # no tokens, no cost said: a call whose cost is unknown
            cost = self._prices.cost(model, tokens)
        self._unsettled = None
        self._record_usage(self._task_id, tokens, cost)

    def usage_so_far(self, model: str, tokens: Tokens) -> None:
        if not self._closed:
            self._unsettled = (model, tokens)

    def unsettled(self) -> tuple[Tokens, float | None] | None:
        """The usage of the provider call in flight that no ``add_usage`` has counted yet, priced."""
        if self._unsettled is None:
            return None
        model, tokens = self._unsettled
        return tokens, self._prices.cost(model, tokens)

    # --- what the runner reports ------------------------------------------------------------------

    def begin_repair(self, answer: str, note: str) -> None:
        """A second, last call to fix ``answer``, which broke its output schema."""
        self._answer_in_repair = answer
        self._next_attempt(note)

    def _next_attempt(self, note: str) -> None:
        self._chunks.clear()
        self._note = note
        self._attempts += 1
