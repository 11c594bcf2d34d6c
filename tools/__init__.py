"""fanout-mcp's MCP layer: the tools, their result shapes, the server's composition root and the CLI.

It imports the engine (``fanout_mcp.server``); the engine never imports it.
"""

from fanout_mcp.tools.app import create_server
from fanout_mcp.tools.tasks import register

__all__ = ["create_server", "register"]
