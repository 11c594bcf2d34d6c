"""``fanout-mcp serve``: MCP over streamable HTTP, with bearer tokens or an OAuth issuer, per caller."""
