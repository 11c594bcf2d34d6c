"""The HTTP client under the Anthropic SDK: the SDK's aiohttp transport, its pool sized to the fan-out.

The SDK builds every request (credentials, headers, base URL, timeouts) and turns every failure into its
own errors whichever transport sends it. Its default transport, httpcore and h11 in pure Python, was the
largest share of the server's CPU: parsing the HTTP responses, and walking every pooled connection on
each request and each close (a cost that grows with N; this module used to spread requests over several
pools to bound it). The SDK also ships an aiohttp transport (``anthropic.DefaultAioHttpClient``, its
``aiohttp`` extra): aiohttp parses HTTP in C and finds a free connection without a walk, and the
transport turns aiohttp's exceptions into httpx's, which the SDK turns into its own as before. In paired
rounds at N = 1000 the engine's CPU per task fell from 4.33 to 2.78 ms (README, "What profiling
changed").

The pool admits at least as many connections as the server may have requests in flight
(``--max-concurrency``) and never fewer than the SDK's default: the registry and the throttle bound
concurrency, never the pool. Proxies in the environment are honoured as by the SDK's default client
(httpx picks them, the aiohttp transport sends through them).
"""

from __future__ import annotations

from typing import Final

import anthropic
import httpx2

_SDK_LIMITS: Final = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)  #: the SDK's default


def pool_limits(ceiling: int) -> httpx2.Limits:
    """The pool for a server that sends at most ``ceiling`` requests at once."""
    most = max(ceiling, _SDK_LIMITS.max_connections or 0)
    return httpx2.Limits(
        max_connections=most, max_keepalive_connections=_SDK_LIMITS.max_keepalive_connections
    )


def http_client(ceiling: int) -> httpx2.AsyncClient:
    """The client for an ``AsyncAnthropic`` that sends at most ``ceiling`` requests at once."""
    return anthropic.DefaultAioHttpClient(limits=pool_limits(ceiling))
