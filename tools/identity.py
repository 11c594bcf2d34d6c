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
    "fanout runs independent subtasks as parallel subagents in the background. Split a job into parts "
    "that do not depend on each other, start them all with one spawn_parallel call, collect the results "
    "with task_output (it waits, but never past a client's timeout: call again while done is false), "
    'then merge them with synthesize. Wait on a big group with task_output(include="status") (counts and '
    "ids, not outputs) and read outputs by task_ids, a few at a time. list_tasks and cancel_tasks manage "
    "what is running."
)


def package_version() -> str:
    try:
        return version("fanout-mcp")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
