"""Adaptive concurrency for one provider: as many requests in flight as its limits allow, fewer while
it pushes back.

Additive increase, multiplicative decrease (as TCP does): a 429 or 529 halves the number of requests
allowed in flight and starts a cool-down that no new request crosses (the provider's ``retry-after``);
each success allows one more, up to the ceiling. One burst of rejections counts as one decrease, so a
single overloaded moment does not collapse the limit to 1.

The provider also says how much of its window is left on every answer (Anthropic's
``anthropic-ratelimit-*`` headers, read into a ``Headroom``), and that is acted on before any 429:
plenty left doubles the limit (up to the ceiling), less left than the limit lowers it to what is left,
and nothing left (requests or tokens) holds every new request until the window resets, when the limit
is the window's whole size again. The limit
starts below the ceiling (``start``) and rises from there, so an account with a small limit meets a
few 429s at most, and one with a large one is used in a round trip or two.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import anyio

# Rejections closer together than this are one event (the requests were already in flight together).
_DECREASE_SPACING_S = 1.0


@dataclass(frozen=True, slots=True)
class Headroom:
    """What one answer's rate-limit headers said: requests and tokens left in the provider's window, and
    seconds until each is whole again (None where a header was missing or unreadable)."""

    requests: int | None = None
    requests_reset_s: float | None = None
    requests_limit: int | None = None  #: the window's size: what is left once it resets
    tokens: int | None = None  #: the scarcest of the token limits the provider reported
    tokens_reset_s: float | None = None

    @staticmethod
    def of(headers: Mapping[str, str], now: datetime) -> Headroom:
        """Read Anthropic's ``anthropic-ratelimit-*`` headers (``now``: the wall clock, tz-aware)."""
        requests = _count(headers.get("anthropic-ratelimit-requests-remaining"))
        requests_reset = _seconds_until(headers.get("anthropic-ratelimit-requests-reset"), now)
        window = _count(headers.get("anthropic-ratelimit-requests-limit"))
        tokens: int | None = None
        tokens_reset: float | None = None
        for kind in ("tokens", "input-tokens", "output-tokens"):
            left = _count(headers.get(f"anthropic-ratelimit-{kind}-remaining"))
            if left is not None and (tokens is None or left < tokens):
                tokens = left
                tokens_reset = _seconds_until(headers.get(f"anthropic-ratelimit-{kind}-reset"), now)
        return Headroom(
            requests=requests,
            requests_reset_s=requests_reset,
            requests_limit=window,
            tokens=tokens,
            tokens_reset_s=tokens_reset,
        )

    @property
    def exhausted_for_s(self) -> float | None:
        """Seconds until a request may be sent again when nothing is left, else None."""
        waits = [
            reset or 0.0
            for left, reset in ((self.requests, self.requests_reset_s), (self.tokens, self.tokens_reset_s))
            if left is not None and left <= 0
        ]
        return max(waits) if waits else None


def _count(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _seconds_until(value: str | None, now: datetime) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, (datetime.fromisoformat(value.replace("Z", "+00:00")) - now).total_seconds())
    except ValueError:
        return None


class Throttle:
    """Bounds requests in flight to a provider; shared by every task that uses it."""

    def __init__(
        self, ceiling: int, *, start: int | None = None, clock: Callable[[], float] = anyio.current_time
    ) -> None:
        self._ceiling = ceiling
        first = ceiling if start is None else max(1, min(start, ceiling))
        self._limit = float(first)
        self._limiter = anyio.CapacityLimiter(first)
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

    @property
    def held_s(self) -> float:
        """Seconds before a new request may start (0 outside a cool-down)."""
        return max(0.0, self._resume_at - self._clock())

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

    def observe(self, headroom: Headroom, *, refused: bool = False) -> None:
        """An answer said how much of the provider's window is left: act on it before any 429. A refusal
        (``refused``: a 429 or 529) may lower the limit or hold new requests, never raise the limit."""
        if (wait := headroom.exhausted_for_s) is not None:
            self._resume_at = max(self._resume_at, self._clock() + wait)
            if headroom.requests_limit is not None:  # a whole window is left once the wait is over
                self._set_limit(headroom.requests_limit)
            return
        left = headroom.requests
        if left is None:
            return
        if left >= 2 * self._limit and not refused:
            self._set_limit(self._limit * 2)
        elif left < self._limit:
            self._set_limit(left)

    def _set_limit(self, limit: float) -> None:
        self._limit = min(float(self._ceiling), max(1.0, limit))
        self._limiter.total_tokens = int(self._limit)

    async def _cool_down(self) -> None:
        # The deadline moves when more rejections arrive, so re-read it after each sleep.
        while (wait := self._resume_at - self._clock()) > 0:  # noqa: ASYNC110
            await anyio.sleep(wait)
