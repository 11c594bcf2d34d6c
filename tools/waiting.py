"""Waiting at the edge: a tool waits for tasks up to the seconds its call allows (``wait_s``, capped by the
server), and tells the client how far they have got while it waits. Nothing below the tools takes a
timeout; the engine is handed a ``Wait`` instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from mcp.server.mcpserver import Context

from ..server.fanin.synthesis import Wait
from .rendering import describe_counts
from .results import Refusal, call_again

if TYPE_CHECKING:
    from ..server import Runtime, Settings

logger = logging.getLogger(__name__)


def wait_budget(tool: str, settings: Settings, wait_s: float | None) -> float:
    """The seconds a call of ``tool`` waits: the server's default, or what it asked for, at most the
    server's limit.

    Raises:
        Refusal: ``wait_s`` is not a number of seconds >= 0.
    """
    if wait_s is None:
        return min(settings.default_wait_s, settings.max_wait_s)
    if math.isnan(wait_s) or wait_s < 0:
        message = f"wait_s must be a number of seconds >= 0 (got {wait_s})"
        raise Refusal("invalid_input", message, call_again(tool))
    return min(wait_s, settings.max_wait_s)


def waiting(runtime: Runtime, seconds: float, ctx: Context) -> Wait:
    """Waits for tasks, reporting progress, until ``seconds`` from now have passed in all."""
    deadline = anyio.current_time() + seconds

    async def wait(task_ids: Sequence[str]) -> None:
        await wait_for(runtime, task_ids, max(0.0, deadline - anyio.current_time()), ctx)

    return wait


async def wait_for(runtime: Runtime, task_ids: Sequence[str], seconds: float, ctx: Context) -> float:
    """Wait up to ``seconds`` for the tasks, reporting progress; return the seconds waited."""
    if seconds <= 0:  # a look, not a wait: no task group, no heartbeat
        return 0.0
    registry = runtime.registry
    total = len(task_ids)
    started = anyio.current_time()
    last = -1.0

    async def report() -> None:
        nonlocal last
        counts = registry.counts(task_ids)
        done = counts.ended
        # Progress must rise with every notification (MCP spec), heartbeats included: between task
        # ends it creeps up with the time waited, never reaching the next whole task.
        waited = (anyio.current_time() - started) / seconds if seconds > 0 else 0.0
        value = float(total) if done == total else done + 0.9 * min(waited, 1.0)
        last = value = max(value, last + 1e-6)
        try:
            await ctx.report_progress(value, total, f"{done}/{total} finished ({describe_counts(counts)})")
        except Exception:  # a client that went away must not turn a result into an error
            logger.debug("progress notification failed", exc_info=True)

    async def heartbeat() -> None:
        while True:
            await anyio.sleep(runtime.settings.progress_interval_s)
            await report()

    with anyio.move_on_after(seconds):
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            await registry.wait(task_ids, on_change=report)
            tg.cancel_scope.cancel()
    return round(anyio.current_time() - started, 3)
