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
from .tasks.mode import look_only

if TYPE_CHECKING:
    from ..server import Runtime, Settings

logger = logging.getLogger(__name__)

#: the least time between two progress notifications about tasks ending. A notification counts every
#: task waited for: a wait on 10,000 tasks that told each batch of ends spent 15 % of the server's CPU
#: on it (py-spy, the bench's N = 10,000); the ends in between are told together.
REPORT_SPACING_S = 0.2


def wait_budget(tool: str, settings: Settings, wait_s: float | None) -> float:
    """The seconds a call of ``tool`` waits: the server's default, or what it asked for, at most the
    server's limit; none for a call a task handle waits for instead (``tasks.mode``).

    Raises:
        Refusal: ``wait_s`` is not a number of seconds >= 0.
    """
    if wait_s is None:
        wait_s = settings.default_wait_s
    if math.isnan(wait_s) or wait_s < 0:
        message = f"wait_s must be a number of seconds >= 0 (got {wait_s})"
        raise Refusal("invalid_input", message, call_again(tool))
    return 0.0 if look_only() else min(wait_s, settings.max_wait_s)


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
    progress = _Progress(runtime, task_ids, seconds, ctx)
    changed = anyio.Event()

    async def on_change(ended: Sequence[str]) -> None:
        changed.set()  # told at the next report, which counts them all

    async def report_changes() -> None:
        nonlocal changed
        while True:
            await changed.wait()
            changed = anyio.Event()
            await progress.report()
            await anyio.sleep(REPORT_SPACING_S)

    async def heartbeat() -> None:
        while True:
            await anyio.sleep(runtime.settings.progress_interval_s)
            await progress.report()

    with anyio.move_on_after(seconds):
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            tg.start_soon(report_changes)
            await runtime.registry.wait(task_ids, on_change=on_change)
            tg.cancel_scope.cancel()
        await progress.report()  # all ended: said at once, whatever the spacing
    return round(anyio.current_time() - progress.started, 3)


class _Progress:
    """A wait's progress notifications: tasks ended of those waited for, rising with every one."""

    def __init__(self, runtime: Runtime, task_ids: Sequence[str], seconds: float, ctx: Context) -> None:
        self._registry, self._task_ids, self._seconds, self._ctx = runtime.registry, task_ids, seconds, ctx
        self.started = anyio.current_time()
        self._last = -1.0

    async def report(self) -> None:
        counts = self._registry.counts(self._task_ids)
        done, total = counts.ended, len(self._task_ids)
        if self._last >= total:
            return  # all ended, and said so
        # Progress must rise with every notification (MCP spec), heartbeats included: between task
        # ends it creeps up with the time waited, never reaching the next whole task.
        waited = (anyio.current_time() - self.started) / self._seconds
        value = float(total) if done == total else done + 0.9 * min(waited, 1.0)
        self._last = value = max(value, self._last + 1e-6)
        message = f"{done}/{total} finished ({describe_counts(counts)})"
        try:
            await self._ctx.report_progress(value, total, message)
        except Exception:  # a client that went away must not turn a result into an error
            logger.debug("progress notification failed", exc_info=True)
