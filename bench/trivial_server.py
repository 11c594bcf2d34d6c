"""The floor for a tool call's round trip: the smallest server the MCP SDK builds, one tool that echoes
its argument, over the SDK's own stdio transport. bench/scale.py times its calls beside task_output's."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("trivial")


@server.tool()
def echo(text: str) -> str:
    """Answer with the text given."""
    return text


if __name__ == "__main__":
    server.run()
