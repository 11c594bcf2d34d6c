from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

from server.backends.throttle import Headroom, Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_pushback_halves_the_limit_once_per_burst_and_success_raises_it_again() -> None:
    clock = Clock()
    throttle = Throttle(20, clock=clock)
    throttle.pushback(0)
    throttle.pushback(0)  # same burst: the requests were in flight together
    assert throttle.limit == 10
    clock.now += 2
    throttle.pushback(0)
    assert throttle.limit == 5
    for _ in range(3):
        throttle.success()
    assert throttle.limit == 8
    for _ in range(100):
        throttle.success()
    assert throttle.limit == 20


async def test_the_limit_never_drops_below_one() -> None:
    clock = Clock()
    throttle = Throttle(4, clock=clock)
    for _ in range(10):
        clock.now += 5
        throttle.pushback(0)
    assert throttle.limit == 1


async def test_slots_are_bounded_by_the_limit() -> None:
    throttle = Throttle(2)
    inside = 0
    most = 0
    release = anyio.Event()

    async def request() -> None:
        nonlocal inside, most
        async with throttle.slot():
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(request)
            await anyio.wait_all_tasks_blocked()
            assert throttle.in_flight == 2
            release.set()
    assert most == 2


async def test_no_new_request_starts_during_the_cool_down() -> None:
    throttle = Throttle(5)
    throttle.pushback(0.05)
    started = anyio.current_time()
    with anyio.fail_after(5):
        async with throttle.slot():
            waited = anyio.current_time() - started
    assert waited > 0  # it did wait for the cool-down rather than going straight through


NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def headers(requests: int, tokens: int = 1_000_000, reset_s: float = 30) -> dict[str, str]:
    reset = (NOW + timedelta(seconds=reset_s)).isoformat().replace("+00:00", "Z")
    return {
        "anthropic-ratelimit-requests-limit": "1000",
        "anthropic-ratelimit-requests-remaining": str(requests),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-input-tokens-remaining": str(tokens),
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-remaining": str(tokens * 2),
        "anthropic-ratelimit-output-tokens-reset": reset,
    }


def test_headroom_reads_requests_and_the_scarcest_tokens_left_and_when_they_reset() -> None:
    headroom = Headroom.of(headers(requests=40, tokens=5_000, reset_s=12), NOW)

    assert headroom == Headroom(
        requests=40, requests_reset_s=12.0, tokens=5_000, tokens_reset_s=12.0, requests_limit=1000
    )
    assert headroom.exhausted_for_s is None
    assert Headroom.of({"anthropic-ratelimit-requests-remaining": "many"}, NOW) == Headroom()


async def test_plenty_left_raises_the_limit_from_its_start_to_the_ceiling_before_any_success() -> None:
    throttle = Throttle(200, start=50, clock=Clock())
    assert throttle.limit == 50

    throttle.observe(Headroom.of(headers(requests=900), NOW))
    assert throttle.limit == 100
    throttle.observe(Headroom.of(headers(requests=900), NOW))
    throttle.observe(Headroom.of(headers(requests=900), NOW))
    assert throttle.limit == 200


async def test_a_refusal_that_says_plenty_is_left_does_not_raise_the_limit() -> None:
    throttle = Throttle(200, start=50, clock=Clock())

    throttle.observe(Headroom.of(headers(requests=900), NOW), refused=True)

    assert throttle.limit == 50


async def test_little_left_lowers_the_limit_to_what_is_left_before_any_429() -> None:
    throttle = Throttle(100, clock=Clock())

    throttle.observe(Headroom.of(headers(requests=7), NOW))

    assert throttle.limit == 7


async def test_nothing_left_holds_new_requests_until_the_window_resets() -> None:
    clock = Clock()
    throttle = Throttle(10, clock=clock)

    throttle.observe(Headroom.of(headers(requests=5, tokens=0, reset_s=20), NOW))

    assert throttle.held_s == 20.0  # slot() waits this out, as it does a 429's retry-after
    assert throttle.limit == 10  # the window ran out, not the concurrency: the ceiling still holds
    clock.now += 20
    assert throttle.held_s == 0.0


async def test_after_a_window_runs_out_its_whole_size_may_start_at_once_when_it_resets() -> None:
    clock = Clock()
    throttle = Throttle(100, clock=clock)
    for left in (30, 9, 2):  # the window drains as its answers come: the limit follows it down
        throttle.observe(Headroom.of(headers(requests=left), NOW))
    assert throttle.limit == 2

    throttle.observe(Headroom.of(headers(requests=0, reset_s=3), NOW))

    assert throttle.held_s == 3.0
    assert throttle.limit == 100  # the header's window (1000 requests), within the ceiling
