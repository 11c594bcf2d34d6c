"""The engine behind the tools, opened in the background so that the server answers at once.

Importing the Anthropic SDK takes over a second, and an MCP client that launches the server waits for
the answer to ``initialize`` (or ``server/discover``) before it offers the server's tools: Claude Code
told its model "still connecting" meanwhile. So the server's lifespan does not open the runtime before
it serves. It starts a task that imports the runtime's module in a worker thread and then opens the
runtime, and serves at once: the handshake, ``tools/list`` and ``prompts/list`` need no runtime; a tool
that does awaits it (``runtime_of``), the first one for about a second.

Whoever owns the process may ask to hear when the import is done (``after_import``): the console
script freezes the heap then (see ``tools/cli/heap.py``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, cast

import anyio
from mcp.server.mcpserver import Context

if TYPE_CHECKING:
    from ..server import Backend, Runtime, Settings

OpenRuntime = Callable[["Settings", "Backend | None"], AbstractAsyncContextManager["Runtime"]]


class RuntimeSlot:
    """The runtime once it is open; ``get`` waits for it until then."""

    def __init__(self) -> None:
        self._runtime: Runtime | None = None
        self._ready = anyio.Event()
        #: a group's dashboard page, when the server has a dashboard (``tools/dashboard``)
        self.group_link: Callable[[str], str | None] | None = None

    def fill(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._ready.set()

    async def get(self) -> Runtime:
        if self._runtime is None:  # once open, no trip through the event loop (every tool call asks)
            await self._ready.wait()
        assert self._runtime is not None
        return self._runtime


@asynccontextmanager
async def open_in_background(
    settings: Settings, backend: Backend | None, after_import: Callable[[], None] | None = None
) -> AsyncGenerator[RuntimeSlot]:
    """A slot the runtime fills once it is open; it stays open until this context ends. ``after_import``
    is called once the runtime's modules are imported, before the runtime opens.

    Raises:
        Exception: what opening the runtime raised (it ends the server, as a failed lifespan does).
    """
    slot = RuntimeSlot()
    closing = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(_hold, settings, backend, slot, closing, after_import)
        try:
            yield slot
        finally:
            closing.set()


async def runtime_of(ctx: Context) -> Runtime:
    """The server's runtime, from a tool's or a prompt's context; waits for it while it is still opening."""
    return await cast(RuntimeSlot, ctx.request_context.lifespan_context).get()


def dashboard_links(ctx: Context, group_ids: list[str]) -> list[str]:
    """The dashboard pages of these groups; none without a dashboard."""
    link = cast(RuntimeSlot, ctx.request_context.lifespan_context).group_link
    return [] if link is None else [url for group_id in group_ids if (url := link(group_id))]


async def _hold(
    settings: Settings,
    backend: Backend | None,
    slot: RuntimeSlot,
    closing: anyio.Event,
    after_import: Callable[[], None] | None,
) -> None:
    # Not abandoned on cancel: a server stopped within its first second waits for the import to end
    # rather than leave a thread importing while the interpreter shuts down.
    open_runtime = await anyio.to_thread.run_sync(_import_open_runtime)
    if after_import is not None:
        after_import()
    async with open_runtime(settings, backend) as runtime:
        slot.fill(runtime)
        await closing.wait()


def _import_open_runtime() -> OpenRuntime:
    from ..server.app.runtime import open_runtime  # the Anthropic SDK with it: the slow import

    return open_runtime
