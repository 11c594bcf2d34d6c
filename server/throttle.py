"""Adaptive concurrency for one provider: fewer requests in flight while it pushes back.

Additive increase, multiplicative decrease (as TCP does): a 429 or 529 halves the number of requests
allowed in flight and starts a cool-down that no new request crosses (the provider's ``retry-after``);
each success allows one more, up to the ceiling. One burst of rejections counts as one decrease, so a
single overloaded moment does not collapse the limit to 1.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import anyio

# Rejections closer together than this are one event (the requests were already in flight together).
_DECREASE_SPACING_S = 1.0


class Throttle:
    """Bounds requests in flight to a provider; shared by every task that uses it."""

    def __init__(self, ceiling: int, *, clock: Callable[[], float] = anyio.current_time) -> None:
        self._ceiling = ceiling
        self._limit = float(ceiling)
        self._limiter = anyio.CapacityLimiter(ceiling)
        self._resume_at = 0.0
        self._last_decrease = float("-inf")
        self._clock = clock

    @property
    def limit(self) -> int:
        """Requests currently allowed in flight."""
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    @asynccontextmanager
    async def slot(self) -> AsyncGenerator[None, None]:
        """Hold one request slot; waits for a free slot and for any cool-down to pass."""
        while True:
            await self._cool_down()
            await self._limiter.acquire_on_behalf_of(token := object())
            if self._clock() >= self._resume_at:
                break
            # A rejection arrived while we waited for the slot: give it back and wait out the cool-down.
            self._limiter.release_on_behalf_of(token)
        try:
            yield
        finally:
            self._limiter.release_on_behalf_of(token)

    def pushback(self, delay: float) -> None:
        """The provider rejected a request for load (429/529) and asked to wait ``delay`` seconds."""
        now = self._clock()
        self._resume_at = max(self._resume_at, now + delay)
        if now - self._last_decrease >= _DECREASE_SPACING_S:
            self._last_decrease = now
            self._set_limit(self._limit / 2)

    def success(self) -> None:
        """A request went through: allow one more in flight (up to the ceiling)."""
        if self._limit < self._ceiling:
            self._set_limit(self._limit + 1)

    def _set_limit(self, limit: float) -> None:
        self._limit = min(float(self._ceiling), max(1.0, limit))
        self._limiter.total_tokens = int(self._limit)

    async def _cool_down(self) -> None:
        # The deadline moves when more rejections arrive, so re-read it after each sleep.
        while (wait := self._resume_at - self._clock()) > 0:  # noqa: ASYNC110
            await anyio.sleep(wait)
