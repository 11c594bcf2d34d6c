"""Sending a batch to the provider, finding it again when the answer to creating it was lost, and
cancelling a batch no task waits for.

A create that failed in a way that leaves open whether the provider made the batch (a timeout, a dropped
connection, a 5xx other than 529) is never simply sent again: that would make a second batch, billed in
full, that nobody reads or cancels. The newest batches of the key are looked through first, for one
created since the first try, of a size that was sent, and not one of this backend's.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, cast

import anthropic
import anyio
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatch
from anthropic.types.messages.batch_create_params import Request

from ..core.errors import TaskFailure
from ..core.state import ErrorKind
from .batch_calls import BatchCalls
from .batch_state import Batch, pause, report, size_of, tell
from .faults import Transient, classify

logger = logging.getLogger(__name__)

CANCEL_GRACE_S: Final = 5.0
_MINE_KEPT: Final = 1_000
# How much earlier than our clock the provider may date a batch we created (clock skew): small, so that
# a batch another program sent before ours is not taken for it.
_CLOCK_SKEW: Final = timedelta(seconds=60)


@dataclass(slots=True)
class _Sending:
    """Creating one batch: when the first try went out, and the sizes of tries that may have worked."""

    started: datetime
    unsure_counts: set[int] = field(default_factory=set[int])


class Submitter:
    """Creates and cancels this backend's batches at the provider."""

    def __init__(self, client: anthropic.AsyncAnthropic, calls: BatchCalls, settle_s: float) -> None:
        self._client = client
        self._calls = calls
        self._settle_s = settle_s  #: after a lost create, how long a batch may take to show in the list
        # Creating a batch and looking for a lost one take turns, so that a look never sees a batch this
        # backend is creating at that moment as a stranger's.
        self._creating = anyio.Lock()
        self._mine: deque[str] = deque(maxlen=_MINE_KEPT)  #: ids of batches this backend sent, newest last

    async def create(self, batch: Batch) -> str | None:
        """Create the batch from the tasks still waiting; its id, or None if it was not created."""
        tell(batch, f"sending a batch of {len(batch.waiters)} requests")
        sending = _Sending(datetime.now(UTC))
        created = await self._calls.call(batch, "create the batch", lambda: self._send(batch, sending))
        if created is None:
            if sending.unsure_counts:  # its tasks left or failed, but a lost create may have made it
                await self._cancel_lost(sending)
            return None
        batch.id = created.id
        report(batch, created)
        return created.id

    async def cancel(self, batch_id: str) -> None:
        try:
            await self._client.messages.batches.cancel(batch_id)
        except Exception:  # the batch is only wasted work now: say so, but fail nothing
            logger.warning("could not cancel batch %s, which no task waits for", batch_id, exc_info=True)

    async def _send(self, batch: Batch, sending: _Sending) -> MessageBatch:
        """One try at creating the batch. After a failure that leaves open whether the provider created
        it, look for it first, twice, ``settle_s`` apart (a batch being committed may not be listed yet)."""
        if sending.unsure_counts:
            found = await self._find_sent(sending)
            if found is None:
                await pause(batch, self._settle_s)
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
            if b.created_at >= since and size_of(b) in sending.unsure_counts and b.id not in self._mine
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
        with anyio.move_on_after(CANCEL_GRACE_S * 2, shield=True):
            try:
                found = await self._find_sent(sending)
            except Exception as exc:  # several candidates, or the list failed: say so, guess nothing
                logger.warning("could not tell whether a batch whose create failed was made: %s", exc)
                return
            if found is not None:
                await self.cancel(found.id)


def _requests(batch: Batch) -> list[Request]:
    return [
        Request(custom_id=w.custom_id, params=cast(MessageCreateParamsNonStreaming, w.params))
        for w in batch.waiters.values()
    ]
