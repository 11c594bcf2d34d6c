"""fanout-mcp's MCP layer: the tools, their result shapes, the server's composition root and the CLI.

It imports the engine (``fanout_mcp.server``); the engine never imports it. The names below are imported
when first used: the command line (``fanout_mcp.tools.cli.main``) lives in this package too, and its
``--version`` and ``--help`` must not wait for the MCP SDK.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .app import create_server
    from .handlers import register

_EXPORTS: Final = {"create_server": "app", "register": "handlers"}

__all__ = ["create_server", "register"]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value
