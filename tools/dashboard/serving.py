"""Where the dashboard runs: beside ``/mcp`` on ``serve``'s listener (``attached``), or, for a stdio
server with ``--dashboard``, on a loopback port of its own (``on_loopback``), served by uvicorn inside the
server's lifespan: it starts with the server and is shut down with it, its event streams first.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import uvicorn

from .app import Dashboard, RuntimeSource

logger = logging.getLogger(__name__)

#: what the MCP server's lifespan enters around its runtime for the dashboard
Around = Callable[[RuntimeSource], AbstractAsyncContextManager[None]]


def attached(dashboard: Dashboard) -> Around:
    """For ``serve``: the dashboard reads the server's runtime; its app is mounted by ``http_app``."""

    @asynccontextmanager
    async def around(source: RuntimeSource) -> AsyncGenerator[None]:
        async with _reading(dashboard, source):
            yield

    return around


def on_loopback(dashboard: Dashboard, port: int) -> Around:
    """For a stdio server: the dashboard on 127.0.0.1:``port`` (0: a free one) while the server runs; its
    link logged on stderr.

    A port that cannot be bound is logged, and the server serves without a dashboard.
    """

    @asynccontextmanager
    async def around(source: RuntimeSource) -> AsyncGenerator[None]:
        try:
            sock = socket.create_server(("127.0.0.1", port))
        except OSError as exc:
            logger.error("no dashboard: cannot listen on 127.0.0.1:%d: %s", port, exc.strerror)
            yield
            return
        bound = sock.getsockname()[1]
        dashboard.base_url = f"http://127.0.0.1:{bound}"
        dashboard.gate.hosts = (f"127.0.0.1:{bound}", f"localhost:{bound}")
        server = _Quiet(uvicorn.Config(dashboard.app(), log_config=None, access_log=False, lifespan="off"))
        with sock:
            async with _reading(dashboard, source), anyio.create_task_group() as group:
                group.start_soon(lambda: server.serve(sockets=[sock]))
                sys.stderr.write(f"dashboard: {dashboard.link()}\n")  # for the person, whatever the log level
                sys.stderr.flush()
                try:
                    yield
                finally:
                    dashboard.closing.set()  # the event streams end, so uvicorn has no connection to wait for
                    server.should_exit = True

    return around


@asynccontextmanager
async def _reading(dashboard: Dashboard, source: RuntimeSource) -> AsyncGenerator[None]:
    """The dashboard reads ``source``'s runtime and hears its retries; its streams end on the way out."""
    dashboard.attach(source)

    async def listen() -> None:
        dashboard.listen(await source.get())

    async with anyio.create_task_group() as group:
        group.start_soon(listen)
        try:
            yield
        finally:
            dashboard.closing.set()
            group.cancel_scope.cancel()  # a runtime that never opened: nothing to listen to


class _Quiet(uvicorn.Server):
    """uvicorn without its own signal handlers: the server's own (``tools/cli/signals.py``) stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
