"""The commands' event loop."""

from __future__ import annotations

import asyncio

import anyio

from tools.cli.loop import loop_options


def test_the_commands_run_on_uvloop_where_the_package_installs_it() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert anyio.run(loop_module, backend_options=loop_options()).startswith("uvloop")
