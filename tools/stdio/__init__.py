"""MCP over stdio: every line checked, the handshake answered early, the SDK's session served."""
