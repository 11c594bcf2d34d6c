"""The HTTP client under the Anthropic SDK: requests dealt out to several small connection pools.

httpcore's pool walks every connection it holds each time a request arrives and each time a response
closes, so with a thousand requests in flight in one pool every request pays for a thousand (at N = 1000
that was about 0.8 ms of CPU per task, and it grows with N). Here requests go round-robin to
``ceil(ceiling / POOL_SIZE)`` pools, ``ceiling`` being the most requests the server sends at once, so a
pool holds about ``POOL_SIZE`` connections at any N and a walk stays short.

Each pool is the SDK's default one (its TCP keep-alive probes, its limit of connections, which a pool of
this size never reaches), and the connections they keep alive between requests add up to the SDK's 100.
Timeouts and redirects are the client's, as the SDK sets them. A proxy in the environment (or
``NO_PROXY``) gets the SDK's default client unchanged: its proxy set-up stays the SDK's.
"""

from __future__ import annotations

import itertools
import math
import socket
import urllib.request
from collections.abc import Sequence
from typing import Final

import anthropic
import httpx2

POOL_SIZE: Final = 128  #: connections a pool is meant to hold at most
_SDK_POOL: Final = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)  #: the SDK's default


def http_client(ceiling: int) -> httpx2.AsyncClient:
    """The client for an ``AsyncAnthropic`` that sends at most ``ceiling`` requests at once."""
    spread = spread_transport(ceiling)
    if spread is None:
        return anthropic.DefaultAsyncHttpxClient()
    return anthropic.DefaultAsyncHttpxClient(transport=spread)


def spread_transport(ceiling: int) -> SpreadTransport | None:
    """The pools for ``ceiling`` requests at once; None where the SDK's own client is the one to use
    (one pool is small enough, or a proxy is set)."""
    pools = math.ceil(ceiling / POOL_SIZE)
    if pools <= 1 or urllib.request.getproxies():
        return None
    keep_alive = math.ceil((_SDK_POOL.max_keepalive_connections or 0) / pools)
    limits = httpx2.Limits(max_connections=_SDK_POOL.max_connections, max_keepalive_connections=keep_alive)
    ssl_context = httpx2.create_ssl_context()  # one for all: each pool would otherwise load the CA bundle
    return SpreadTransport(
        [
            httpx2.AsyncHTTPTransport(verify=ssl_context, limits=limits, socket_options=_KEEP_ALIVE_PROBES)
            for _ in range(pools)
        ]
    )


class SpreadTransport(httpx2.AsyncBaseTransport):
    """Sends each request through the next of several transports, in turn."""

    def __init__(self, transports: Sequence[httpx2.AsyncBaseTransport]) -> None:
        self.transports = tuple(transports)
        self._turns = itertools.cycle(self.transports)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await next(self._turns).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()


def _keep_alive_probes() -> list[tuple[int, int, int]]:
    """TCP keep-alive as the SDK's default client sets it: probes after 60 s idle, every 60 s, 5 of them."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    idle = "TCP_KEEPIDLE" if hasattr(socket, "TCP_KEEPINTVL") else "TCP_KEEPALIVE"  # macOS: its name for it
    for name, value in (("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5), (idle, 60)):
        number: int | None = getattr(socket, name, None)
        if number is not None:
            options.append((socket.IPPROTO_TCP, number, value))
    return options


_KEEP_ALIVE_PROBES: Final = _keep_alive_probes()
