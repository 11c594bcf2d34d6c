from __future__ import annotations

import anyio

from fanout_mcp.server.throttle import Throttle


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
