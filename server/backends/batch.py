"""Subagents through the Message Batches API: the tasks of a spawn go to the provider as one batch.

Tasks whose ``run`` begins within ``window_s`` of the first one waiting are sent together (the registry
starts a spawn's tasks a few ms apart), each request under its task's ID as ``custom_id``. One driver per
batch, in the task group that ``running()`` owns, creates the batch, polls it with back-off (from
``poll_min_s``, doubling up to ``poll_max_s``) and, once it has ended, reads its results and completes
each task as its line arrives: lines come in any order, so they are matched on ``custom_id``.

A batch may take up to 24 hours: a task waits in it without holding one of the server's slots, and its
default timeout is 25 hours. Transient faults (429, 529, 5xx, a dropped connection) on any call are
retried for as long as a task still waits: a busy provider never costs a result. A cancelled task
leaves its batch, and once no task waits for a sent batch any more, the batch is cancelled at the
provider. Requests are billed at the batch discount (``PriceTable.batch_cost``). Provider exceptions
become ``TaskFailure`` through ``faults.classify``, in ``batch_calls``, and nowhere else.

This module joins tasks into batches and drives each batch; the rest is a module per job:
``batch_state`` (a batch and its waiting tasks), ``batch_submit`` (creating a batch, finding one whose
create's answer was lost, cancelling), ``batch_calls`` (retried calls, polling until a batch ends) and
``batch_results`` (reading its results into each task's outcome).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Final

import anthropic
import anyio
from anyio.abc import TaskGroup

from ..config.pricing import PriceTable
from ..core.errors import TaskFailure
from ..core.models import SubagentRequest, SubagentResult
from ..core.state import ErrorKind
from . import Backend, TaskSink, Traits
from .anthropic_api import credentials_problem
from .batch_calls import BatchCalls
from .batch_results import read_results
from .batch_state import Batch, Waiter, fail_all, has_room
from .batch_submit import CANCEL_GRACE_S, Submitter
from .endpoint import Endpoint
from .message_params import message_params

logger = logging.getLogger(__name__)

NAME: Final = "batch"
DEFAULT_TIMEOUT_S: Final = 25 * 3600.0  #: a batch ends within 24 h; an hour more to read its results
# A request queued at the provider for hours must not hold one of the server's slots. No warm-first start
# (a batch's requests run in any order, so warming a shared prefix first gains nothing) and no tools (a
# tool loop would be one batch, a day long, per turn).
_TRAITS: Final = Traits(shares_server_limit=False, default_timeout_s=DEFAULT_TIMEOUT_S)
_CUSTOM_ID: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")  #: what the API accepts as a custom_id


class BatchBackend(Backend):
    """Runs subagents as requests of Message Batches, through the shared ``AsyncAnthropic`` client.

    Tasks can run only while ``running()`` is entered (the server's runtime does that).
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        prices: PriceTable,
        *,
        window_s: float = 0.2,
        poll_min_s: float = 1.0,
        poll_max_s: float = 60.0,
        settle_s: float = 10.0,
        endpoint: Endpoint | None = None,
    ) -> None:
        self._client = client
        self._endpoint = endpoint or Endpoint(client)  #: shared with the API backend: one endpoint, one key
        self._prices = prices
        self._window_s = window_s
        self._calls = BatchCalls(client, self._endpoint, poll_min_s, poll_max_s)
        self._submitter = Submitter(client, self._calls, settle_s)
        self._group: TaskGroup | None = None
        self._open: Batch | None = None  #: the batch new tasks join, until its window closes

    @property
    def name(self) -> str:
        return NAME

    @property
    def traits(self) -> Traits:
        return _TRAITS

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    def unavailable_reason(self) -> str | None:
        return credentials_problem(self._client) or self._endpoint.refusal()

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[BatchBackend, None]:
        """Own the batches' drivers; on exit every driver stops and a task still waiting fails.

        An exception from the body is re-raised as itself, not wrapped in an exception group.
        """
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield self
            except Exception as exc:
                error = exc
            finally:
                self._group = self._open = None
                group.cancel_scope.cancel()
        if error is not None:
            raise error

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        group = self._group
        if group is None:
            raise TaskFailure(
                ErrorKind.BACKEND_UNAVAILABLE, "the batch backend is not running (the server is stopping)"
            )
        self._endpoint.check(request.model)
        params = message_params(request)
        waiter = Waiter(sink.task_id, params, len(json.dumps(params)), sink)
        batch = self._join(waiter, group)
        try:
            await waiter.done.wait()
        except anyio.get_cancelled_exc_class():
            await self._leave(batch, waiter)
            raise
        if isinstance(waiter.outcome, TaskFailure):
            raise waiter.outcome
        assert waiter.outcome is not None
        return waiter.outcome

    # --- joining and leaving ---------------------------------------------------------------------

    def _join(self, waiter: Waiter, group: TaskGroup) -> Batch:
        batch = self._open
        if batch is None or not has_room(batch, waiter):
            batch = self._open = Batch()
            group.start_soon(self._drive, batch, name="fanout batch driver")
        if not _CUSTOM_ID.fullmatch(waiter.custom_id) or waiter.custom_id in batch.waiters:
            # The task ID is what a user finds in the provider's console; only an ID the API would
            # refuse, or one already in this batch, needs a stand-in.
            waiter.custom_id = secrets.token_hex(16)
        batch.waiters[waiter.custom_id] = waiter
        batch.size += waiter.size
        waiter.sink.status("waiting to be sent in a batch with its siblings")
        return batch

    async def _leave(self, batch: Batch, waiter: Waiter) -> None:
        """A cancelled task leaves its batch; the last one to leave a sent batch cancels it.

        The API cancels whole batches only: a task that leaves while others still wait cannot take its
        own request out, which then runs (and is billed) anyway.
        """
        if batch.waiters.pop(waiter.custom_id, None) is None:
            return  # its result had arrived already
        batch.size -= waiter.size
        if batch.waiters or batch is self._open:
            return  # an unsent batch's driver sees at sending time who is left
        batch.abandoned.set()
        if batch.id is not None and not batch.ended:  # no id yet: the driver cancels it once created
            with anyio.move_on_after(CANCEL_GRACE_S, shield=True):
                await self._submitter.cancel(batch.id)

    # --- one batch, from sending to results ------------------------------------------------------

    async def _drive(self, batch: Batch) -> None:
        """Send ``batch`` when its window closes and see it through. Raises nothing but cancellation."""
        try:
            await anyio.sleep(self._window_s)
            if self._open is batch:
                self._open = None
            await self._process(batch)
        except Exception as exc:  # a bug must fail this batch's tasks, not the server
            logger.exception("the driver of a batch crashed")
            fail_all(
                batch,
                ErrorKind.INTERNAL,
                f"internal error in fanout-mcp's batch backend ({type(exc).__name__}: {exc}); this is a "
                "bug. The task can be spawned again.",
            )
        finally:
            if self._open is batch:
                self._open = None
            fail_all(  # only tasks still waiting when the server stops are left here
                batch,
                ErrorKind.BACKEND_UNAVAILABLE,
                "the server stopped before this task's batch ended; spawn the task again",
            )

    async def _process(self, batch: Batch) -> None:
        batch_id = await self._submitter.create(batch)
        if batch_id is None:
            return
        if not batch.waiters:  # every task left while the batch was being created
            await self._submitter.cancel(batch_id)
            return
        if await self._calls.wait_until_ended(batch, batch_id):
            reading = f"read the results of batch {batch_id}"
            await self._calls.call(
                batch, reading, lambda: read_results(self._client, self._prices, batch, batch_id)
            )
            missing = f"batch {batch_id} ended without a result for this task's request"
            if batch.found and not batch.answered:
                missing = (
                    f"batch {batch_id}, taken for this task's batch when the answer to creating it was "
                    "lost, holds none of its requests: it was another program's, and this one was never "
                    "sent"
                )
            fail_all(batch, ErrorKind.API_ERROR, f"{missing}; spawn the task again")
