"""A gate for work that must run in a worker thread, never on the event loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class ThreadGate(Generic[T]):
    """Stands in for ``target``: each call says that it entered, holds its thread until the test opens the
    gate, then runs ``target``. While a call is held, a test that sees the event loop answer proves that
    the call runs in a worker thread. A call held on the event loop itself freezes the test too, so the
    hold is bounded: after ``bound`` seconds the call raises instead, and the test fails on what it sees
    next. Leaving the ``with`` block opens the gate, so that no thread is left held.
    """

    def __init__(self, target: Callable[..., T], bound: float = 10.0) -> None:
        self._target = target
        self._bound = bound
        self._entered = threading.Event()
        self._open = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        self._entered.set()
        if not self._open.wait(self._bound):
            raise AssertionError(f"held for {self._bound} s: the call blocked the event loop")
        return self._target(*args, **kwargs)

    async def entered(self) -> None:
        """Return once a call is held (waits in a thread of its own: the event loop stays free)."""
        assert await anyio.to_thread.run_sync(self._entered.wait, self._bound), "the gate was never reached"

    def open(self) -> None:
        self._open.set()

    def __enter__(self) -> ThreadGate[T]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.open()
