"""Who the server is: its name, title, version and instructions, as the handshake gives them.

Light on purpose: the early handshake (``greeter``) and ``--version`` read them before the MCP SDK is
imported.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

NAME: Final = "fanout"
TITLE: Final = "fanout: parallel subagents"
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
