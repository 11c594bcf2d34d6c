"""The composition root: settings in, a ready ``MCPServer`` out."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from .arguments import StrictServer
from .engine import RuntimeSlot, open_in_background
from .handlers import register, tool_facts
from .identity import INSTRUCTIONS, NAME, TITLE, package_version
from .prompt_templates import register_prompts
from .run_parallel import register as register_run_parallel
from .sampling import NAME as SAMPLING
from .tasks.support import TaskSupport

if TYPE_CHECKING:
    from ..server import Backend, Settings
    from .dashboard.serving import Around

logger = logging.getLogger("fanout_mcp")


def backend_names(settings: Settings, backend: Backend | None = None) -> list[str]:
    """Every name a task's ``backend`` may give on this server (as ``runtime.make_roster`` builds the
    roster from the settings), and ``sampling``, which every spawn of an MCP client adds."""
    if backend is not None:
        return ["auto", backend.name, SAMPLING]
    return ["auto", "anthropic", *settings.commands, "batch", SAMPLING]


@asynccontextmanager
async def _opened(
    settings: Settings,
    backend: Backend | None,
    after_import: Callable[[], None] | None,
    tasks: TaskSupport,
    dashboard: tuple[Around, Callable[[str], str | None]] | None,
) -> AsyncGenerator[RuntimeSlot]:
    """What the server's lifespan holds open: the runtime, the tasks extension, and the dashboard
    when the server has one (``tools/dashboard``)."""
    async with open_in_background(settings, backend, after_import) as slot, tasks.open():
        if dashboard is None:
            yield slot
            return
        around, slot.group_link = dashboard
        async with around(slot):
            yield slot


def create_server(
    settings: Settings,
    backend: Backend | None = None,
    after_import: Callable[[], None] | None = None,
    *,
    verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    dashboard: tuple[Around, Callable[[str], str | None]] | None = None,
) -> MCPServer[RuntimeSlot]:
    """An MCP server whose lifespan owns the runtime (client, registry, task group), which it opens in
    the background while it already serves (see ``engine``).

    ``backend`` replaces the Anthropic backend (tests use it to run the engine without a provider);
    ``after_import`` is called once the runtime's modules are imported (see ``engine``). ``verifier``
    and ``auth`` check the bearer tokens of HTTP requests (``tools/http/access.py``). ``dashboard``: what
    the lifespan enters around the runtime for the dashboard, and a group's link (``tools/dashboard``).
    """

    tasks = TaskSupport(settings.operators)

    @asynccontextmanager
    async def lifespan(_: MCPServer[RuntimeSlot]) -> AsyncGenerator[RuntimeSlot]:
        async with _opened(settings, backend, after_import, tasks, dashboard) as slot:
            yield slot

    mcp: MCPServer[RuntimeSlot] = StrictServer(
        NAME,
        title=TITLE,
        version=package_version(),
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=settings.log_level,  # type: ignore[arg-type]  # checked by Settings
        facts=tool_facts(settings, backend_names(settings, backend)),
        token_verifier=verifier,
        auth=auth,
        extensions=[tasks.extension],
        middleware=[tasks.middleware],
    )
    tasks.serve(mcp)
    register(mcp, settings)
    register_run_parallel(mcp, settings)
    register_prompts(mcp)
    if not settings.roots:
        logger.warning(
            "no --root given and the working directory is the filesystem root or the home directory: "
            "tasks cannot read files until the server is started with --root DIR"
        )
    return mcp
