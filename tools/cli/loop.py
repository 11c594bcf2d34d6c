"""The event loop every command runs on: uvloop's where it is installed, else asyncio's own.

The package depends on uvloop on Linux and macOS (not on Windows, which it does not support). Its loop
and socket transports are C: with a thousand answers streaming at once the server spent about 9 % less
CPU per task and finished sooner (bench/fanout.py over stdio, eight paired rounds). Uninstalling
uvloop brings asyncio's loop back; nothing else changes.
"""

from __future__ import annotations

from typing import Any


def loop_options() -> dict[str, Any]:
    """anyio's ``backend_options`` for ``anyio.run`` (asyncio backend)."""
    try:
        import uvloop
    except ImportError:
        return {}
    return {"loop_factory": uvloop.new_event_loop}
