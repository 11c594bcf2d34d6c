"""``fanout-mcp serve``: the MCP server over streamable HTTP at ``/mcp``, with ``/healthz``, on uvicorn.

The app is the SDK's (``streamable_http_app``), stateful: a 2025-11-25 client gets a session (its
``Mcp-Session-Id``), over which sampling and progress reach it; a 2026-07-28 client's requests stand
alone, and get progress but no sampling (that era has no channel for it). The server's lifespan opens
the runtime, as on stdio. The socket is bound (and listening) before the address is announced on
stderr, so a client that reads the announcement can connect at once.

Stopping: the console script's own signal handling (``cli/signals.py``), not uvicorn's: the first
SIGTERM, SIGINT or SIGHUP asks uvicorn to shut down (open connections get a short grace, then the
lifespan ends and every unfinished task is cancelled); a second ends the process at once.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator
from typing import Any, Final

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp

from ...server import Settings
from ..identity import package_version
from .access import Access

#: Seconds open connections (a session's event stream, a call still waiting) get to end at shutdown.
_GRACE_S: Final = 2


def http_app(server: MCPServer[Any], access: Access, dashboard: ASGIApp | None = None) -> ASGIApp:
    """The ASGI app: MCP at ``/mcp`` (behind the bearer check when there is one), ``/healthz``, and the
    ``dashboard``'s app at every other path."""

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        return JSONResponse({"ok": True, "version": package_version()})

    app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=access.security)
    if dashboard is not None:
        app.router.routes.append(Mount("/", app=dashboard))  # last: /mcp and /healthz match first
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port).

    Raises:
        OSError: the address cannot be bound.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the console script's stop it (see the module)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_http(app: ASGIApp, sock: socket.socket, settings: Settings) -> None:
    """Serve ``app`` on ``sock`` until a stop signal, then shut down as the module says."""
    from ..cli.signals import stop_signals

    config = uvicorn.Config(
        app,
        log_config=None,  # the server's logging, on stderr
        log_level=settings.log_level.lower(),
        access_log=settings.log_level in ("DEBUG", "INFO"),  # paths and statuses, never headers
        timeout_graceful_shutdown=_GRACE_S,
        lifespan="on",
    )
    server = _Uvicorn(config)

    async def stop_on_signal(scope: anyio.CancelScope) -> None:
        with scope:
            await anyio.sleep_forever()
        server.should_exit = True

    async with stop_signals() as stop, anyio.create_task_group() as group:
        group.start_soon(stop_on_signal, stop.scope)
        await server.serve(sockets=[sock])
        group.cancel_scope.cancel()
