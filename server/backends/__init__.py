"""The one small interface every backend implements.

A backend runs one subagent call to completion. It must be cancellation-safe (the registry cancels it
on timeout, on ``cancel_tasks`` and at shutdown), must not take a timeout parameter (the registry wraps
it in ``fail_after``; a backend may read ``anyio.current_effective_deadline()`` to stop retrying in
time), and translates its provider's exceptions into ``TaskFailure`` at its border.
"""

from __future__ import annotations

from typing import Protocol

import anyio

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


class Backend(Protocol):
    """Runs subagents on one kind of provider.

    The traits below have the defaults most backends want; a backend that subclasses ``Backend``
    inherits them and overrides only what differs.
    """

    @property
    def name(self) -> str: ...

    @property
    def caches_prompts(self) -> bool:
        """Whether a warm-first start pays off (the provider caches a shared prompt prefix)."""
        return False

    def model_for(self, asked: str | None, server_default: str) -> str:
        """The model a task runs with, given the one it asked for; "" leaves the choice to the backend."""
        return asked or server_default

    @property
    def limiter(self) -> anyio.CapacityLimiter | None:
        """This backend's own bound on calls at once (taken before a task starts running), or None."""
        return None

    @property
    def shares_server_limit(self) -> bool:
        """Whether a running task takes one of the server's ``max_concurrency`` slots (False for work
        that waits on the provider's side, such as a batch request)."""
        return True

    @property
    def default_timeout_s(self) -> float | None:
        """A task's timeout when it gives none; None: the server's task timeout."""
        return None

    @property
    def runs_in_directory(self) -> bool:
        """Whether a task's ``cwd`` means anything to it (an agent CLI runs in a working directory)."""
        return False

    @property
    def offers_tools(self) -> bool:
        """Whether it runs the workspace tool loop for a request with ``tools`` set."""
        return False

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run anything here (for the calling model), or None if it can."""
        ...

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        """Run one subagent to completion.

        Raises:
            TaskFailure: the subagent failed; ``kind`` says why.
        """
        ...
