"""Stop signals: SIGTERM, SIGINT and SIGHUP end the server the way closing its stdin does.

``until_signalled`` runs the server (or a plan) and cancels it at the first of them. The shutdown that
follows is the ordinary one: every unfinished task is cancelled, each agent CLI and all it started get
SIGTERM and then SIGKILL after their grace and are reaped, open streams are closed. Then ``Stopped`` is
raised. The signals stay caught until the shutdown is over, so that a second Ctrl-C cannot cut it short
(nor print a traceback); the shutdown is bounded by the CLIs' grace anyway.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import anyio
from anyio.abc import TaskStatus

logger = logging.getLogger(__name__)

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

T = TypeVar("T")


class Stopped(Exception):
    """A stop signal came, and what it stopped has finished shutting down."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(f"stopped by {signum.name}")
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """What a shell reports for a process a signal ended: 128 + its number."""
        return 128 + self.signum


async def until_signalled(work: Callable[[], Awaitable[T]]) -> T:
    """What ``work`` returns, unless a stop signal cancels it first.

    Raises:
        Stopped: a stop signal came; ``work`` was cancelled and its shutdown is over.
    """
    working = anyio.CancelScope()
    received: list[signal.Signals] = []
    results: list[T] = []
    errors: list[Exception] = []
    async with anyio.create_task_group() as group:
        await group.start(_watch, working, received)
        with working:
            try:
                results.append(await work())
            except Exception as exc:  # raised past the task group, which would wrap it in a group
                errors.append(exc)
        group.cancel_scope.cancel()
    if errors:
        raise errors[0]
    if results:
        return results[0]
    raise Stopped(received[0])


async def _watch(
    working: anyio.CancelScope,
    received: list[signal.Signals],
    *,
    task_status: TaskStatus[None],
) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        task_status.started()
        async for signum in signals:
            stop = signal.Signals(signum)
            if received:
                logger.warning("%s: already stopping", stop.name)
                continue
            logger.warning("%s: stopping (cancelling every task, ending every agent CLI)", stop.name)
            received.append(stop)
            working.cancel()
