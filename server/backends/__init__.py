"""The one small interface every backend implements.

A backend runs one subagent call to completion. It must be cancellation-safe (the registry cancels it
on timeout, on ``cancel_tasks`` and at shutdown), must not take a timeout parameter (the registry wraps
it in ``fail_after``; a backend may read ``anyio.current_effective_deadline()`` to stop retrying in
time), and translates its provider's exceptions into ``TaskFailure`` at its border.

Everything else the engine needs to know about a backend is data: one frozen ``Traits`` record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..core.models import SubagentRequest, SubagentResult, Tokens
from ..core.state import ErrorKind


class TaskSink(Protocol):
    """Where a backend reports what happens while a task runs."""

    @property
    def task_id(self) -> str:
        """The task's ID (a batch request carries it as its ``custom_id``)."""
        ...

    def response_started(self) -> None:
        """The provider began answering (the shared prompt prefix is now cached)."""

    def append(self, text: str) -> None:
        """More of the answer arrived."""

    def restart(self, note: str, cause: ErrorKind) -> None:
        """The attempt failed and will be retried: drop the partial answer and say why.

        ``cause`` is the kind the task fails with if its time runs out before a retry gets an answer
        started (``rate_limited`` while the provider pushes back).
        """

    def status(self, text: str) -> None:
        """A status line for the task, e.g. that it is waiting out a rate limit."""

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        """Tokens one provider call used (failed attempts included: they are billed too).

        ``cost_usd`` is the cost as the provider reported it (an agent CLI does); without it the cost
        comes from the server's price table.
        """

    def usage_so_far(self, model: str, tokens: Tokens) -> None:
        """What a provider call in flight has used so far (its input, once it starts answering), not
        yet counted: ``add_usage`` of the same call counts it whole. Only what outlives the process
        running the call (a Temporal worker's heartbeat) needs it, to count a call cut off with it.
        """


# Compared by identity, not by value (eq=False): the runner keeps one limiter per record for
# ``max_concurrency``, so backends share a bound exactly when they share a record. Weak references let
# that limiter go with the last backend holding the record.
@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class Traits:
    """What the engine needs to know about a backend, as data. The defaults suit most backends.

    Backends that share one record share its ``max_concurrency`` bound: an agent CLI makes one record
    of its own; the sampling backend, made per spawn, one per client connection, so that a client is
    asked at most that many things at once however many spawns it makes.
    """

    caches_prompts: bool = False  #: a warm-first start pays off (the provider caches a shared prefix)
    #: a running task takes one of the server's ``max_concurrency`` slots (False for work that waits on
    #: the provider's side, such as a batch request)
    shares_server_limit: bool = True
    default_timeout_s: float | None = None  #: a task's timeout when it gives none (None: the server's)
    runs_in_directory: bool = False  #: a task's ``cwd`` means something (an agent CLI runs in one)
    offers_tools: bool = False  #: it runs the workspace tool loop for a request with ``tools`` set
    edits: bool = False  #: it can run an edit task (``SubagentRequest.edit``): change files in its ``cwd``
    #: its own bound on calls at once, taken before a task starts running; None: no bound of its own
    max_concurrency: int | None = None


class Backend(Protocol):
    """Runs subagents on one kind of provider: a name, its traits and three methods."""

    @property
    def name(self) -> str: ...

    @property
    def traits(self) -> Traits: ...

    def model_for(self, asked: str | None, server_default: str) -> str:
        """The model a task runs with, given the one it asked for; "" leaves the choice to the backend.

        A backend that subclasses ``Backend`` inherits this default.
        """
        return asked or server_default

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run anything here (for the calling model), or None if it can."""
        ...

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        """Run one subagent to completion.

        Raises:
            TaskFailure: the subagent failed; ``kind`` says why.
        """
        ...
