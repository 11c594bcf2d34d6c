"""Reading an ended batch's results: each waiting task completes as its line arrives (lines come in any
order, so they are matched on ``custom_id``), billed at the batch discount (``PriceTable.batch_cost``)."""

from __future__ import annotations

import logging
from typing import Final

import anthropic
import anyio
from anthropic.types.messages import MessageBatchResult

from ..config.pricing import PriceTable
from ..core.errors import TaskFailure
from ..core.models import SubagentResult
from ..core.state import ErrorKind
from . import TaskSink
from .answer_stream import tokens_of
from .batch_state import Batch

logger = logging.getLogger(__name__)

_CLOSE_GRACE_S: Final = 2.0
# Error types of an errored request that the task itself caused: it must change before it can work.
_INVALID: Final = frozenset({"invalid_request_error", "request_too_large", "not_found_error"})


async def read_results(
    client: anthropic.AsyncAnthropic, prices: PriceTable, batch: Batch, batch_id: str
) -> None:
    """Complete each waiting task as its line arrives (a retried read skips the ones completed)."""
    lines = await client.messages.batches.results(batch_id)
    try:
        async for line in lines:
            waiter = batch.waiters.pop(line.custom_id, None)
            if waiter is not None:  # None: a task that left, or one completed by an earlier read
                batch.answered += 1
                waiter.finish(_outcome(prices, batch_id, waiter.sink, line.result))
    finally:
        with anyio.move_on_after(_CLOSE_GRACE_S, shield=True):
            await lines.close()


def _outcome(
    prices: PriceTable, batch_id: str, sink: TaskSink, result: MessageBatchResult
) -> SubagentResult | TaskFailure:
    try:
        if result.type == "succeeded":
            message = result.message
            text = "".join(block.text for block in message.content if block.type == "text")
            tokens = tokens_of(message.usage)
            sink.response_started()
            sink.append(text)
            sink.add_usage(message.model, tokens, prices.batch_cost(message.model, tokens))
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
