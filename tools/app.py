"""The composition root: settings in, a ready ``MCPServer`` out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from .arguments import StrictServer
from .engine import RuntimeSlot, open_in_background
from .handlers import register, tool_facts
from .identity import INSTRUCTIONS, NAME, TITLE, package_version
from .prompt_templates import register_prompts
from .sampling import NAME as SAMPLING

if TYPE_CHECKING:
    from ..server import Backend, Settings

logger = logging.getLogger("fanout_mcp")


def backend_names(settings: Settings, backend: Backend | None = None) -> list[str]:
    """Every name a task's ``backend`` may give on this server (as ``runtime.make_roster`` builds the
    roster from the settings), and ``sampling``, which every spawn of an MCP client adds."""
    if backend is not None:
        return ["auto", backend.name, SAMPLING]
    return ["auto", "anthropic", *settings.commands, "batch", SAMPLING]


def create_server(
    settings: Settings,
    backend: Backend | None = None,
    after_import: Callable[[], None] | None = None,
    *,
    verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
) -> MCPServer[RuntimeSlot]:
    """An MCP server whose lifespan owns the runtime (client, registry, task group), which it opens in
    the background while it already serves (see ``engine``).

    ``backend`` replaces the Anthropic backend (tests use it to run the engine without a provider);
    ``after_import`` is called once the runtime's modules are imported (see ``engine``). ``verifier``
    and ``auth`` check the bearer tokens of HTTP requests (``tools/http/access.py``).
    """

    def lifespan(_: MCPServer[RuntimeSlot]) -> AbstractAsyncContextManager[RuntimeSlot]:
        return open_in_background(settings, backend, after_import)

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
    )
    register(mcp, settings)
    register_prompts(mcp)
    if not settings.roots:
        logger.warning(
            "no --root given and the working directory is the filesystem root or the home directory: "
            "tasks cannot read files until the server is started with --root DIR"
        )
    return mcp
