"""Limits per principal: how many tasks one principal may have unfinished, and how many spawns it may
make a minute. A server shared by several principals (over HTTP) stays usable by all of them when one
of them fans out too much: that one is refused with what to do, the others go on.

The server-wide limits (``max_unfinished``, ``max_queued_bytes``) are the registry's; these come on top.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

from .callers import Caller
from .errors import LimitReached
from .state import TaskState

_WINDOW_S = 60.0

#: Tasks kept per state, of one owner (the store's ``tally(owner=...)``).
OwnerTally = Callable[[str], Mapping[TaskState, int]]


class Quotas:
    """Checks a principal's spawn against its limits, and remembers when it spawned."""

    def __init__(self, max_unfinished: int, max_spawns_per_minute: int, tally: OwnerTally) -> None:
        self._max_unfinished = max_unfinished
        self._max_spawns = max_spawns_per_minute
        self._tally = tally
        self._spawned: dict[str, deque[float]] = {}  #: each principal's spawns in the last minute

    def check(self, caller: Caller, count: int) -> None:
        """Whether ``caller`` may spawn ``count`` tasks now.

        Raises:
            LimitReached: it would pass one of its limits (the message names it and what to do).
        """
        tally = self._tally(caller.principal)
        unfinished = tally[TaskState.QUEUED] + tally[TaskState.RUNNING]
        if unfinished + count > self._max_unfinished:
            raise LimitReached(
                f"{caller.principal!r} has {unfinished} tasks queued or running and this spawn of {count} "
                f"would pass the limit of {self._max_unfinished} unfinished tasks per principal "
                "(--max-unfinished-per-principal); collect or cancel some of them first."
            )
        recent = self._recent(caller.principal)
        if self._max_spawns and len(recent) >= self._max_spawns:
            wait = max(1, round(recent[0] + _WINDOW_S - time.monotonic()))
            raise LimitReached(
                f"{caller.principal!r} has made {len(recent)} spawns in the last minute, the limit per "
                f"principal (--max-spawns-per-minute); spawn again in {wait} s, or put more tasks in one "
                "spawn_parallel call."
            )

    def spawned(self, caller: Caller) -> None:
        """``caller`` has just spawned."""
        self._spawned.setdefault(caller.principal, deque()).append(time.monotonic())

    def _recent(self, principal: str) -> deque[float]:
        """The principal's spawns in the last minute (older ones forgotten)."""
        times = self._spawned.get(principal)
        if times is None:
            return deque()
        since = time.monotonic() - _WINDOW_S
        while times and times[0] <= since:
            times.popleft()
        if not times:
            del self._spawned[principal]
        return times
