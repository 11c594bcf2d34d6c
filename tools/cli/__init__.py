"""The fanout-mcp command: serve, run a plan, doctor; signals and progress."""
