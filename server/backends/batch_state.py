"""One Message Batch in the making and on its way: the tasks waiting in it, what is known of it at the
provider, and the little each step does to all of its tasks at once (a status line, a pause that ends
when the last task leaves, a failure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from anthropic.types.messages import MessageBatch

from ..core.errors import TaskFailure
from ..core.models import SubagentResult
from ..core.state import ErrorKind
from . import TaskSink

MAX_REQUESTS: Final = 100_000  #: the API's limit per batch
MAX_BYTES: Final = 200 * 2**20  #: the API takes 256 MB per batch; this leaves room for the envelope


@dataclass(eq=False, slots=True)
class Waiter:
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
class Batch:
    """The tasks sent (or about to be sent) as one Message Batch."""

    waiters: dict[str, Waiter] = field(default_factory=dict[str, Waiter])  #: still waiting, by custom_id
    size: int = 0
    id: str | None = None  #: the provider's id, once created
    ended: bool = False  #: the provider has finished processing it
    found: bool = False  #: taken from the list after its create's answer was lost (likely, not surely, ours)
    answered: int = 0  #: result lines that matched a task of this batch
    abandoned: anyio.Event = field(default_factory=anyio.Event)  #: sent, and no task waits for it any more


def has_room(batch: Batch, waiter: Waiter) -> bool:
    full = len(batch.waiters) >= MAX_REQUESTS or batch.size + waiter.size > MAX_BYTES
    return not (batch.waiters and full)


def size_of(current: MessageBatch) -> int:
    """The requests in a batch, as the provider counts them."""
    counts = current.request_counts
    return counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired


async def pause(batch: Batch, seconds: float) -> None:
    """Sleep, but only until no task waits for the batch any more."""
    with anyio.move_on_after(seconds):
        await batch.abandoned.wait()


def tell(batch: Batch, line: str) -> None:
    for waiter in batch.waiters.values():
        waiter.sink.status(line)


def report(batch: Batch, current: MessageBatch) -> None:
    total = size_of(current)
    done = total - current.request_counts.processing
    tell(batch, f"in batch {current.id}: {done} of {total} requests done ({current.processing_status})")


def fail_all(batch: Batch, kind: ErrorKind, message: str) -> None:
    waiters, batch.waiters = batch.waiters, {}
    for waiter in waiters.values():
        waiter.finish(TaskFailure(kind, message))
