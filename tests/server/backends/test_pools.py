"""The SDK's aiohttp transport under the server's client: every request in flight at once, the SDK's
answers and errors as before, and a proxy in the environment honoured."""

from __future__ import annotations

import anthropic
import anyio
import pytest

from server.backends.pools import http_client, pool_limits
from tests.fake_api import FakeApi


async def test_requests_beyond_aiohttps_own_limit_of_100_are_all_in_flight_at_once(fake_api: FakeApi) -> None:
    n = 150
    client = anthropic.AsyncAnthropic(max_retries=0, http_client=http_client(n))
    texts: list[str] = []
    held = False

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
            held = await anyio.to_thread.run_sync(fake_api.wait_held, n, 20.0)
            fake_api.release()
    finally:
        await client.close()
    assert held, "the pool kept some requests waiting for a connection"
    assert sorted(texts, key=int) == [str(i) for i in range(n)]


def test_the_pool_admits_what_the_server_may_send_at_once_and_never_less_than_the_sdks_default() -> None:
    assert pool_limits(10_000).max_connections == 10_000
    assert pool_limits(20).max_connections == 1000


async def test_an_error_status_is_the_sdks_own_error(fake_api: FakeApi) -> None:
    client = anthropic.AsyncAnthropic(max_retries=0, http_client=http_client(10))
    try:
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=10,
                messages=[{"role": "user", "content": "[[fail:429]]"}],
            )
    finally:
        await client.close()


async def test_a_proxy_in_the_environment_is_the_one_requests_go_through(
    fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []
    status: int | None = None

    async def proxy(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            seen.append(await stream.receive())
            await stream.send(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy)
        client = anthropic.AsyncAnthropic(max_retries=0, http_client=http_client(10))
        try:
            with anyio.fail_after(20), pytest.raises(anthropic.APIStatusError) as refused:
                await client.messages.create(
                    model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
                )
            status = refused.value.status_code
        finally:
            await client.close()
        tg.cancel_scope.cancel()
    assert status == 502
    assert seen and seen[0].startswith(f"POST {fake_api.base_url}/v1/messages".encode())
