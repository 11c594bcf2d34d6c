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
become ``TaskFailure`` here, through ``faults.classify``, and nowhere else.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

import anthropic
import anyio
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatch, MessageBatchResult
from anthropic.types.messages.batch_create_params import Request
from anyio.abc import TaskGroup

from ..config.pricing import PriceTable
from ..core.errors import TaskFailure
from ..core.models import SubagentRequest, SubagentResult
from ..core.state import ErrorKind
from . import Backend, TaskSink
from .answer_stream import tokens_of
from .anthropic_api import credentials_problem
from .endpoint import Endpoint, Refused
from .faults import Transient, backoff_delay, classify
from .message_params import message_params

logger = logging.getLogger(__name__)

NAME: Final = "batch"
DEFAULT_TIMEOUT_S: Final = 25 * 3600.0  #: a batch ends within 24 h; an hour more to read its results
MAX_REQUESTS: Final = 100_000  #: the API's limit per batch
MAX_BYTES: Final = 200 * 2**20  #: the API takes 256 MB per batch; this leaves room for the envelope
_CANCEL_GRACE_S: Final = 5.0
_MINE_KEPT: Final = 1_000
# How much earlier than our clock the provider may date a batch we created (clock skew): small, so that
# a batch another program sent before ours is not taken for it.
_CLOCK_SKEW: Final = timedelta(seconds=60)
_CLOSE_GRACE_S: Final = 2.0
# Error types of an errored request that the task itself caused: it must change before it can work.
_INVALID: Final = frozenset({"invalid_request_error", "request_too_large", "not_found_error"})

_CUSTOM_ID: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")  #: what the API accepts as a custom_id
_T = TypeVar("_T")


@dataclass(eq=False, slots=True)
class _Waiter:
    """One task waiting in a batch for its result."""

    custom_id: str
    params: dict[str, Any]
    size: int  #: an upper bound on the request's bytes in the batch
    sink: TaskSink
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: SubagentResult | TaskFailure | None = None

    def finish(self, outcome: SubagentResult | TaskFailure) -> None:
        self.outcome = outcome
        self.done.set()


@dataclass(eq=False, slots=True)
class _Batch:
    """The tasks sent (or about to be sent) as one Message Batch."""

    waiters: dict[str, _Waiter] = field(default_factory=dict[str, _Waiter])  #: still waiting, by custom_id
    size: int = 0
    id: str | None = None  #: the provider's id, once created
    ended: bool = False  #: the provider has finished processing it
    found: bool = False  #: taken from the list after its create's answer was lost (likely, not surely, ours)
    answered: int = 0  #: result lines that matched a task of this batch
    abandoned: anyio.Event = field(default_factory=anyio.Event)  #: sent, and no task waits for it any more


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
        self._poll_min_s = poll_min_s
        self._poll_max_s = poll_max_s
        self._settle_s = settle_s  #: after a lost create, how long a batch may take to show in the list
        # Creating a batch and looking for a lost one take turns, so that a look never sees a batch this
        # backend is creating at that moment as a stranger's.
        self._creating = anyio.Lock()
        self._group: TaskGroup | None = None
        self._open: _Batch | None = None  #: the batch new tasks join, until its window closes
        self._mine: deque[str] = deque(maxlen=_MINE_KEPT)  #: ids of batches this backend sent, newest last

    # Inherited: caches_prompts False (a batch's requests run in any order, so warming a shared prefix
    # first gains nothing) and offers_tools False (a tool loop would be one batch, a day long, per turn).

    @property
    def name(self) -> str:
        return NAME

    @property
    def shares_server_limit(self) -> bool:
        return False  # a request queued at the provider for hours must not hold one of the server's slots

    @property
    def default_timeout_s(self) -> float | None:
        return DEFAULT_TIMEOUT_S

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
        waiter = _Waiter(sink.task_id, params, len(json.dumps(params)), sink)
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

    def _join(self, waiter: _Waiter, group: TaskGroup) -> _Batch:
        batch = self._open
        if batch is None or not _has_room(batch, waiter):
            batch = self._open = _Batch()
            group.start_soon(self._drive, batch, name="fanout batch driver")
        if not _CUSTOM_ID.fullmatch(waiter.custom_id) or waiter.custom_id in batch.waiters:
            # The task ID is what a user finds in the provider's console; only an ID the API would
            # refuse, or one already in this batch, needs a stand-in.
            waiter.custom_id = secrets.token_hex(16)
        batch.waiters[waiter.custom_id] = waiter
        batch.size += waiter.size
        waiter.sink.status("waiting to be sent in a batch with its siblings")
        return batch

    async def _leave(self, batch: _Batch, waiter: _Waiter) -> None:
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
            with anyio.move_on_after(_CANCEL_GRACE_S, shield=True):
                await self._cancel_remote(batch.id)

    async def _cancel_remote(self, batch_id: str) -> None:
        try:
            await self._client.messages.batches.cancel(batch_id)
        except Exception:  # the batch is only wasted work now: say so, but fail nothing
            logger.warning("could not cancel batch %s, which no task waits for", batch_id, exc_info=True)

    # --- one batch, from sending to results ------------------------------------------------------

    async def _drive(self, batch: _Batch) -> None:
        """Send ``batch`` when its window closes and see it through. Raises nothing but cancellation."""
        try:
            await anyio.sleep(self._window_s)
            if self._open is batch:
                self._open = None
            await self._process(batch)
        except Exception as exc:  # a bug must fail this batch's tasks, not the server
            logger.exception("the driver of a batch crashed")
            self._fail_all(
                batch,
                ErrorKind.INTERNAL,
                f"internal error in fanout-mcp's batch backend ({type(exc).__name__}: {exc}); this is a "
                "bug. The task can be spawned again.",
            )
        finally:
            if self._open is batch:
                self._open = None
            self._fail_all(  # only tasks still waiting when the server stops are left here
                batch,
                ErrorKind.BACKEND_UNAVAILABLE,
                "the server stopped before this task's batch ended; spawn the task again",
            )

    async def _process(self, batch: _Batch) -> None:
        batch_id = await self._create(batch)
        if batch_id is None:
            return
        if not batch.waiters:  # every task left while the batch was being created
            await self._cancel_remote(batch_id)
            return
        if await self._wait_until_ended(batch, batch_id):
            reading = f"read the results of batch {batch_id}"
            await self._call(batch, reading, lambda: self._read_results(batch, batch_id))
            missing = f"batch {batch_id} ended without a result for this task's request"
            if batch.found and not batch.answered:
                missing = (
                    f"batch {batch_id}, taken for this task's batch when the answer to creating it was "
                    "lost, holds none of its requests: it was another program's, and this one was never "
                    "sent"
                )
            self._fail_all(batch, ErrorKind.API_ERROR, f"{missing}; spawn the task again")

    async def _create(self, batch: _Batch) -> str | None:
        """Create the batch from the tasks still waiting; its id, or None if it was not created."""
        _tell(batch, f"sending a batch of {len(batch.waiters)} requests")
        sending = _Sending(datetime.now(UTC))
        created = await self._call(batch, "create the batch", lambda: self._send(batch, sending))
        if created is None:
            if sending.unsure_counts:  # its tasks left or failed, but a lost create may have made it
                await self._cancel_lost(sending)
            return None
        batch.id = created.id
        _report(batch, created)
        return created.id

    async def _send(self, batch: _Batch, sending: _Sending) -> MessageBatch:
        """One try at creating the batch. After a failure that leaves open whether the provider created
        it (a timeout, a dropped connection, a 5xx other than 529), look for it first, twice, ``settle_s``
        apart (a batch being committed may not be listed yet): sending it again would make a second
        batch, billed in full, that nobody reads or cancels."""
        if sending.unsure_counts:
            found = await self._find_sent(sending)
            if found is None:
                await _pause(batch, self._settle_s)
                found = await self._find_sent(sending)
            if found is not None:
                logger.warning("batch %s was created although its create call failed; using it", found.id)
                batch.found = True
                return found
        requests = _requests(batch)
        async with self._creating:
            try:
                created = await self._client.messages.batches.create(requests=requests)
            except Exception as exc:
                fault = classify(exc)
                if isinstance(fault, Transient) and not fault.pushback:  # 429/529: refused, nothing made
                    sending.unsure_counts.add(len(requests))
                raise
            self._mine.append(created.id)
            return created

    async def _find_sent(self, sending: _Sending) -> MessageBatch | None:
        """The batch an unsure create made, from the newest batches of this key: created since the first
        try, of a size that was sent, not one of this backend's. Several such: the tasks fail (taking one
        could be another program's batch), naming them all."""
        async with self._creating:
            page = await self._client.messages.batches.list(limit=100)
        since = sending.started - _CLOCK_SKEW
        found = [
            b
            for b in page.data
            if b.created_at >= since and _size(b) in sending.unsure_counts and b.id not in self._mine
        ]
        if len(found) > 1:
            raise TaskFailure(
                ErrorKind.API_ERROR,
                "the provider's answers to creating the batch were lost, and "
                f"{len(found)} new batches of this size exist ({', '.join(b.id for b in found)}); one may "
                "be this one. It is not sent again, so as not to pay twice: look at them in the Console, "
                "then spawn the tasks again.",
            )
        if found:
            self._mine.append(found[0].id)
        return found[0] if found else None

    async def _cancel_lost(self, sending: _Sending) -> None:
        """No task waits for a batch whose create's answer was lost: cancel it if it was made after all."""
        with anyio.move_on_after(_CANCEL_GRACE_S * 2, shield=True):
            try:
                found = await self._find_sent(sending)
            except Exception as exc:  # several candidates, or the list failed: say so, guess nothing
                logger.warning("could not tell whether a batch whose create failed was made: %s", exc)
                return
            if found is not None:
                await self._cancel_remote(found.id)

    async def _wait_until_ended(self, batch: _Batch, batch_id: str) -> bool:
        """Poll until the batch has ended (True), or no task waits any more (False)."""
        interval, reading = self._poll_min_s, f"read the status of batch {batch_id}"
        retrieve = self._client.messages.batches.retrieve
        while True:
            await _pause(batch, interval)
            current = await self._call(batch, reading, lambda: retrieve(batch_id))
            if current is None:
                return False
            _report(batch, current)
            if current.processing_status == "ended":
                batch.ended = True
                return True
            interval = min(interval * 2, self._poll_max_s)

    async def _read_results(self, batch: _Batch, batch_id: str) -> None:
        """Complete each waiting task as its line arrives (a retried read skips the ones completed)."""
        lines = await self._client.messages.batches.results(batch_id)
        try:
            async for line in lines:
                waiter = batch.waiters.pop(line.custom_id, None)
                if waiter is not None:  # None: a task that left, or one completed by an earlier read
                    batch.answered += 1
                    waiter.finish(self._outcome(batch_id, waiter.sink, line.result))
        finally:
            with anyio.move_on_after(_CLOSE_GRACE_S, shield=True):
                await lines.close()

    async def _call(self, batch: _Batch, doing: str, call: Callable[[], Awaitable[_T]]) -> _T | None:
        """``call()``, retried through transient faults while a task waits. None when no task waits any
        more, or when the fault is permanent: then every waiting task fails with it."""
        failures = 0
        while batch.waiters:
            try:
                answer = await call()
            except Exception as exc:
                fault = self._verdict(exc) or _fault(exc, doing)
                if isinstance(fault, TaskFailure):
                    self._fail_all(batch, fault.kind, fault.message)
                    return None
                failures += 1
                backoff = backoff_delay(fault, failures, self._poll_min_s, self._poll_max_s)
                delay = min(backoff, self._endpoint.grace_left())
                note = f"{fault.what} trying to {doing}; retrying in {delay:.1f} s"
                logger.warning("batch of %d task(s): %s (failure %d)", len(batch.waiters), note, failures)
                _tell(batch, note)
                await _pause(batch, delay)
            else:
                self._endpoint.reached()
                return answer
        return None

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

    # --- results -----------------------------------------------------------------------------------

    def _outcome(
        self, batch_id: str, sink: TaskSink, result: MessageBatchResult
    ) -> SubagentResult | TaskFailure:
        try:
            if result.type == "succeeded":
                message = result.message
                text = "".join(block.text for block in message.content if block.type == "text")
                tokens = tokens_of(message.usage)
                sink.response_started()
                sink.append(text)
                sink.add_usage(message.model, tokens, self._prices.batch_cost(message.model, tokens))
                return SubagentResult(text=text, model=message.model, stop_reason=message.stop_reason)
            if result.type == "errored":
                return _errored(batch_id, result.error.error.type, result.error.error.message)
        except Exception as exc:  # a bug must fail this task only, not the rest of the batch's results
            logger.exception("reading a result of batch %s failed", batch_id)
            return TaskFailure(
                ErrorKind.INTERNAL,
                f"internal error in fanout-mcp reading this task's result ({type(exc).__name__}: {exc}); "
                "this is a bug. The task can be spawned again.",
            )
        if result.type == "canceled":
            return TaskFailure(
                ErrorKind.API_ERROR,
                f"batch {batch_id} was canceled at the provider before this request ran (not by this "
                "server: from the Console, or by another program with the same key). Spawn it again.",
            )
        return TaskFailure(
            ErrorKind.TIMEOUT,
            f"the batch expired before this request ran ({batch_id} got no result within 24 h, the "
            "provider's limit); spawn it again, or with backend 'anthropic' to run it at once.",
        )

    @staticmethod
    def _fail_all(batch: _Batch, kind: ErrorKind, message: str) -> None:
        waiters, batch.waiters = batch.waiters, {}
        for waiter in waiters.values():
            waiter.finish(TaskFailure(kind, message))


@dataclass(slots=True)
class _Sending:
    """Creating one batch: when the first try went out, and the sizes of tries that may have worked."""

    started: datetime
    unsure_counts: set[int] = field(default_factory=set[int])


def _size(current: MessageBatch) -> int:
    counts = current.request_counts
    return counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired


def _has_room(batch: _Batch, waiter: _Waiter) -> bool:
    full = len(batch.waiters) >= MAX_REQUESTS or batch.size + waiter.size > MAX_BYTES
    return not (batch.waiters and full)


def _requests(batch: _Batch) -> list[Request]:
    return [
        Request(custom_id=w.custom_id, params=cast(MessageCreateParamsNonStreaming, w.params))
        for w in batch.waiters.values()
    ]


async def _pause(batch: _Batch, seconds: float) -> None:
    """Sleep, but only until no task waits for the batch any more."""
    with anyio.move_on_after(seconds):
        await batch.abandoned.wait()


def _tell(batch: _Batch, line: str) -> None:
    for waiter in batch.waiters.values():
        waiter.sink.status(line)


def _report(batch: _Batch, current: MessageBatch) -> None:
    total = _size(current)
    done = total - current.request_counts.processing
    _tell(batch, f"in batch {current.id}: {done} of {total} requests done ({current.processing_status})")


def _errored(batch_id: str, error_type: str, detail: str) -> TaskFailure:
    if error_type in _INVALID:
        return TaskFailure(
            ErrorKind.INVALID_INPUT,
            f"the provider rejected this request of batch {batch_id} ({error_type}: {detail}). Change "
            "the task (a shorter prompt, fewer files, another max_tokens or model) and spawn it again.",
        )
    return TaskFailure(
        ErrorKind.API_ERROR,
        f"the provider failed this request of batch {batch_id} ({error_type}: {detail}); its siblings are "
        "not affected. Spawn it again.",
    )


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
