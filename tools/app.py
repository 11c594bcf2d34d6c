"""The composition root: settings in, a ready ``MCPServer`` out."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from mcp.server.mcpserver import MCPServer

from fanout_mcp.server import Backend, Runtime, Settings, open_runtime
from fanout_mcp.tools.arguments import StrictServer
from fanout_mcp.tools.prompts import register_prompts
from fanout_mcp.tools.sampling import NAME as SAMPLING
from fanout_mcp.tools.tasks import register, tool_facts

logger = logging.getLogger("fanout_mcp")

INSTRUCTIONS: Final = (
    "fanout runs independent subtasks as parallel subagents in the background. Start them all with one "
    "spawn_parallel call, collect the results with task_output (it waits, but returns before a client's "
    "timeout: call again while done is false), then merge them with synthesize. On a big group, wait "
    'with task_output(include="status") and read outputs by task_ids, a few at a time. Every result '
    "says what to call next in next."
)


def package_version() -> str:
    try:
        return version("fanout-mcp")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def backend_names(settings: Settings, backend: Backend | None = None) -> list[str]:
    """Every name a task's ``backend`` may give on this server (as ``runtime.make_roster`` builds the
    roster from the settings), and ``sampling``, which every spawn of an MCP client adds."""
    if backend is not None:
        return ["auto", backend.name, SAMPLING]
    return ["auto", "anthropic", *settings.commands, "batch", SAMPLING]


def create_server(settings: Settings, backend: Backend | None = None) -> MCPServer[Runtime]:
    """An MCP server whose lifespan owns the runtime (client, registry, task group).

    ``backend`` replaces the Anthropic backend (tests use it to run the engine without a provider).
    """

    @asynccontextmanager
    async def lifespan(_: MCPServer[Runtime]) -> AsyncGenerator[Runtime, None]:
        async with open_runtime(settings, backend) as runtime:
            yield runtime

    mcp: MCPServer[Runtime] = StrictServer(
        "fanout",
        title="fanout: parallel subagents",
        version=package_version(),
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=settings.log_level,  # type: ignore[arg-type]  # checked by Settings
        facts=tool_facts(settings, backend_names(settings, backend)),
    )
    register(mcp, settings)
    register_prompts(mcp)
    if not settings.roots:
        logger.warning(
            "no --root given and the working directory is the filesystem root or the home directory: "
            "tasks cannot read files until the server is started with --root DIR"
        )
    return mcp
