"""Requests in flight spread over small connection pools, so that no pool's bookkeeping grows with N."""

from __future__ import annotations

import anthropic
import anyio
import pytest

from server.backends.pools import POOL_SIZE, SpreadTransport, spread_transport
from tests.fake_api import FakeApi


def connections(spread: SpreadTransport) -> list[int]:
    """The connections each pool holds (httpx keeps its httpcore pool private)."""
    return [len(transport._pool.connections) for transport in spread.transports]  # pyright: ignore


async def test_requests_in_flight_are_spread_over_pools_of_at_most_128_connections(fake_api: FakeApi) -> None:
    n = 300
    spread = spread_transport(n)
    assert spread is not None
    client = anthropic.AsyncAnthropic(
        max_retries=0, http_client=anthropic.DefaultAsyncHttpxClient(transport=spread)
    )
    texts: list[str] = []
    held: list[int] = []

    async def ask(i: int) -> None:
        message = await client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=10,
            messages=[{"role": "user", "content": f"[[hold]] [[reply:{i}]]"}],
        )
        texts.append("".join(block.text for block in message.content if block.type == "text"))

    try:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(ask, i)
            assert await anyio.to_thread.run_sync(fake_api.wait_held, n, 20.0), (
                "the requests never all arrived"
            )
            held += connections(spread)
            fake_api.release()
    finally:
        await client.close()
    assert len(held) == 3 and sum(held) == n
    assert max(held) <= POOL_SIZE
    assert sorted(texts, key=int) == [str(i) for i in range(n)]


def test_a_server_that_sends_few_requests_at_once_keeps_the_sdks_own_client() -> None:
    assert spread_transport(POOL_SIZE) is None


def test_with_a_proxy_in_the_environment_the_sdks_own_client_sets_it_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert spread_transport(1000) is None
