"""Stop signals: SIGTERM, SIGINT and SIGHUP end the server (or a plan's run) the way closing stdin does.

``stop_signals`` catches them while its block runs. The first cancels ``StopSignals.scope``, the work
inside it; the shutdown that follows is the ordinary one (every unfinished task is cancelled, each agent
CLI and all it started get SIGTERM and then SIGKILL after their grace and are reaped, open streams are
closed), and what the block does after its scope (``run`` prints what finished) still runs. A second
signal during that shutdown ends the process at once, with the status a shell gives a process that
signal ended (128 + its number) and no traceback: whoever sends it does not want to wait. Each agent
CLI's supervisor still ends it and all it started, on the parent-death signal the kernel sends it.

``until_signalled`` is the simple case: run some work, raise ``Stopped`` when a signal cut it short.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
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
        return exit_status(self.signum)


class StopSignals:
    """What ``stop_signals`` caught: ``scope`` is cancelled by the first signal, which ``received`` holds."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.received: signal.Signals | None = None


def exit_status(signum: signal.Signals) -> int:
    """What a shell reports for a process a signal ended: 128 + its number."""
    return 128 + signum


@asynccontextmanager
async def stop_signals() -> AsyncGenerator[StopSignals]:
    """Stop signals caught while the block runs: the first cancels the returned ``scope``; the second
    exits the process at once (status 128 + its number)."""
    stop = StopSignals()
    errors: list[Exception] = []
    async with anyio.create_task_group() as group:
        await group.start(_watch, stop)
        try:
            yield stop
        except Exception as exc:  # raised past the task group, which would wrap it in a group
            errors.append(exc)
        group.cancel_scope.cancel()
    if errors:
        raise errors[0]


async def until_signalled(work: Callable[[], Awaitable[T]]) -> T:
    """What ``work`` returns, unless a stop signal cancels it first.

    Raises:
        Stopped: a stop signal came; ``work`` was cancelled and its shutdown is over.
    """
    async with stop_signals() as stop:
        with stop.scope:
            return await work()
    assert stop.received is not None  # only a signal cancels the scope
    raise Stopped(stop.received)


async def _watch(stop: StopSignals, *, task_status: TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        task_status.started()
        async for signum in signals:
            received = signal.Signals(signum)
            if stop.received is not None:
                logger.warning("%s again: exiting at once", received.name)
                os._exit(exit_status(received))  # no cleanup: that is what the first signal is waiting for
            logger.warning("%s: stopping (cancelling every task, ending every agent CLI)", received.name)
            stop.received = received
            stop.scope.cancel()
