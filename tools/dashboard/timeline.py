"""When each task was queued, started, retried and ended, as the dashboard saw it: the timeline's data.

A snapshot says how long a task has run (``elapsed_s``), not when it was queued. So the first time a
task is seen, it is noted as queued then (its group's first sighting, for the tasks of one spawn); a
running task's start is now less its elapsed time, exact whenever it is seen; its end is its start plus
its elapsed time. Retries come from the registry's notices, as they happen. A task first seen already
ended (history from the store) gets its run's length only, placed at the sighting: its bar says
``seen_late``. Memory stays bounded: the oldest tasks are dropped past ``MAX_TASKS``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from ...server import RetryNotice, TaskSnapshot, TaskState

MAX_TASKS: Final = 50_000
_MAX_RETRIES: Final = 50  #: retry marks kept per task


@dataclass(slots=True)
class Seen:
    """One task's moments, in seconds since the epoch."""

    queued: float
    started: float | None = None
    ended: float | None = None
    seen_late: bool = False  #: first seen after it ended: only its length is known
    retries: list[float] = field(default_factory=list[float])


@dataclass(frozen=True, slots=True)
class Bar:
    """One task's bar, in seconds from its group's first moment."""

    task_id: str
    label: str
    state: str
    queued: float
    started: float | None
    ended: float | None
    retries: tuple[float, ...]
    seen_late: bool


class Timeline:
    """Every task's moments, as observed (see the module)."""

    def __init__(self) -> None:
        self._tasks: OrderedDict[str, Seen] = OrderedDict()

    def observe(self, snaps: Iterable[TaskSnapshot], now: float | None = None) -> None:
        """Note what ``snaps`` (read at ``now``) say of their tasks' moments."""
        now = time.time() if now is None else now
        for snap in snaps:
            seen = self._tasks.get(snap.task_id)
            if seen is None:
                seen = self._tasks[snap.task_id] = Seen(queued=now, seen_late=snap.state.terminal)
                self._trim()
            _advance(seen, snap, now)

    def retried(self, notice: RetryNotice) -> None:
        """A registry retry notice (``TaskRegistry.on_retry``): quick, never blocks."""
        seen = self._tasks.get(notice.task_id)
        if seen is None:
            seen = self._tasks[notice.task_id] = Seen(queued=time.time())
            self._trim()
        if len(seen.retries) < _MAX_RETRIES:
            seen.retries.append(time.time())

    def bars(self, snaps: Iterable[TaskSnapshot], now: float | None = None) -> tuple[list[Bar], float]:
        """The bars of ``snaps`` (observed first), and the span they cover in seconds."""
        now = time.time() if now is None else now
        snaps = list(snaps)
        self.observe(snaps, now)
        moments = [(snap, self._tasks[snap.task_id]) for snap in snaps]
        origin = min((seen.queued for _, seen in moments), default=now)
        bars = [_bar(snap, seen, origin) for snap, seen in moments]
        ends = [seen.ended if seen.ended is not None else now for _, seen in moments]
        return bars, max([*ends, origin]) - origin

    def _trim(self) -> None:
        while len(self._tasks) > MAX_TASKS:
            self._tasks.popitem(last=False)


def _advance(seen: Seen, snap: TaskSnapshot, now: float) -> None:
    elapsed = snap.elapsed_s
    if seen.started is None and elapsed is not None:
        if snap.state is TaskState.RUNNING:
            seen.started = max(seen.queued, now - elapsed)
        elif snap.state.terminal:
            seen.started = max(seen.queued, now - elapsed) if seen.seen_late else now - elapsed
    if seen.ended is None and snap.state.terminal:
        seen.ended = (seen.started + elapsed) if seen.started is not None and elapsed is not None else now
        seen.ended = max(seen.ended, seen.started or seen.queued)


def _bar(snap: TaskSnapshot, seen: Seen, origin: float) -> Bar:
    def at(moment: float | None) -> float | None:
        return None if moment is None else round(moment - origin, 3)

    return Bar(
        task_id=snap.task_id,
        label=snap.label,
        state=snap.state.value,
        queued=round(seen.queued - origin, 3),
        started=at(seen.started),
        ended=at(seen.ended),
        retries=tuple(round(moment - origin, 3) for moment in seen.retries),
        seen_late=seen.seen_late,
    )
