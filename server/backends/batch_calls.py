"""The calls made for a batch's tasks, and polling it until it ends.

Each call is retried through transient faults (429, 529, 5xx, a dropped connection) for as long as a
task still waits, with back-off from ``poll_min_s`` doubling up to ``poll_max_s``: a busy provider never
costs a result. A permanent fault fails every waiting task with it; refused credentials or an endpoint
given up are the shared endpoint's verdict. Provider exceptions become ``TaskFailure`` here, through
``faults.classify``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anthropic

from ..core.errors import TaskFailure
from ..core.state import ErrorKind
from .batch_state import Batch, fail_all, pause, report, tell
from .endpoint import Endpoint, Refused
from .faults import Transient, backoff_delay, classify

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class BatchCalls:
    """Calls to the Message Batches API on behalf of a batch's waiting tasks."""

    def __init__(
        self, client: anthropic.AsyncAnthropic, endpoint: Endpoint, poll_min_s: float, poll_max_s: float
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._poll_min_s = poll_min_s
        self._poll_max_s = poll_max_s

    async def call(self, batch: Batch, doing: str, call: Callable[[], Awaitable[_T]]) -> _T | None:
        """``call()``, retried through transient faults while a task waits. None when no task waits any
        more, or when the fault is permanent: then every waiting task fails with it."""
        failures = 0
        while batch.waiters:
            try:
                answer = await call()
            except Exception as exc:
                fault = self._verdict(exc) or _fault(exc, doing)
                if isinstance(fault, TaskFailure):
                    fail_all(batch, fault.kind, fault.message)
                    return None
                failures += 1
                backoff = backoff_delay(fault, failures, self._poll_min_s, self._poll_max_s)
                delay = min(backoff, self._endpoint.grace_left())
                note = f"{fault.what} trying to {doing}; retrying in {delay:.1f} s"
                logger.warning("batch of %d task(s): %s (failure %d)", len(batch.waiters), note, failures)
                tell(batch, note)
                await pause(batch, delay)
            else:
                self._endpoint.reached()
                return answer
        return None

    async def wait_until_ended(self, batch: Batch, batch_id: str) -> bool:
        """Poll until the batch has ended (True), or no task waits any more (False)."""
        interval, reading = self._poll_min_s, f"read the status of batch {batch_id}"
        retrieve = self._client.messages.batches.retrieve
        while True:
            await pause(batch, interval)
            current = await self.call(batch, reading, lambda: retrieve(batch_id))
            if current is None:
                return False
            report(batch, current)
            if current.processing_status == "ended":
                batch.ended = True
                return True
            interval = min(interval * 2, self._poll_max_s)

    def _verdict(self, exc: Exception) -> TaskFailure | None:
        """What the endpoint concludes from a failed call: refused credentials (a 401 stands for every
        task of this server) or an endpoint given up; None when it concludes nothing."""
        mapped = classify(exc)
        if isinstance(mapped, Refused) and mapped.status == 401:
            return self._endpoint.refused(mapped, None)
        if isinstance(mapped, Transient) and mapped.unconnected:
            return self._endpoint.unreachable(mapped.unconnected)
        if isinstance(exc, anthropic.APIStatusError):
            self._endpoint.reached()
        return None


def _fault(exc: Exception, doing: str) -> Transient | TaskFailure:
    """A failed call, as a fault to retry or a failure for every task of the batch."""
    mapped = classify(exc)
    if isinstance(mapped, Transient):
        return mapped
    if isinstance(exc, anthropic.NotFoundError):  # the classifier's hint (a wrong model id) is wrong here
        return TaskFailure(
            ErrorKind.API_ERROR,
            f"could not {doing}: the provider answered 404 ({exc.message}). If ANTHROPIC_BASE_URL points at "
            "a proxy, it may not offer the Message Batches API. Spawn the task again, or with backend "
            "'anthropic'.",
        )
    if isinstance(mapped, TaskFailure):
        return TaskFailure(mapped.kind, f"could not {doing}: {mapped.message}")
    logger.error("unexpected error trying to %s", doing, exc_info=exc)
    return TaskFailure(
        ErrorKind.INTERNAL,
        f"internal error in fanout-mcp trying to {doing} ({type(exc).__name__}: {exc}); this is a bug",
    )
