"""What a working task says of itself: how many of its subagent tasks are done, failed and running, and
the cost so far (``statusMessage``); how often to ask again (``pollIntervalMs``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mcp.server.mcpserver import Context

from ...server.core.errors import BackendUnavailable
from ..engine import runtime_of

logger = logging.getLogger(__name__)

# Poll intervals by the number of tasks: a few tasks end in seconds, thousands take minutes.
_POLL_MS = ((10, 1_000), (100, 2_000), (1_000, 5_000))
_POLL_MS_MOST = 10_000


@dataclass(frozen=True, slots=True)
class Progress:
    message: str
    poll_interval_ms: int
    signature: tuple[object, ...]  #: changes whenever something of the tasks changed
    all_cancelled: bool


async def progress(context: Context, task_ids: Sequence[str]) -> Progress:
    """Where the tasks ``task_ids`` stand now (read from the store for tasks other processes ran)."""
    registry = (await runtime_of(context)).registry
    try:
        await registry.refresh(task_ids)
    except BackendUnavailable as exc:  # a status poll says what it holds; the next one reads again
        logger.warning("%s", exc)
    counts = registry.counts(task_ids)
    cost = registry.usage(task_ids).cost_usd
    total = len(task_ids)
    ended = total - counts.queued - counts.running
    parts = [f"{counts.completed} of {total} done", f"{counts.failed} failed", f"{counts.running} running"]
    if counts.queued:
        parts.append(f"{counts.queued} queued")
    if counts.cancelled:
        parts.append(f"{counts.cancelled} cancelled")
    if counts.interrupted:
        parts.append(f"{counts.interrupted} interrupted")
    message = ", ".join(parts) + (f"; ${cost:.4f} so far" if cost is not None else "; cost unknown")
    if ended == total:
        message = f"all {total} ended: {message}"
    interval = next((ms for most, ms in _POLL_MS if total <= most), _POLL_MS_MOST)
    signature = (tuple(counts.model_dump().values()), cost)
    return Progress(message, interval, signature, all_cancelled=total > 0 and counts.cancelled == total)
