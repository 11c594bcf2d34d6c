"""The runtime opens in the background, and whoever owns the process hears when its import is done."""

from __future__ import annotations

import sys
from typing import Any

import anyio

from tests.server.fakes import ScriptedBackend
from tools.engine import open_in_background

RUNTIME_MODULE = "fanout_mcp.server.app.runtime"


async def test_after_import_is_called_once_when_the_runtime_is_imported(make_settings: Any) -> None:
    heard: list[bool] = []

    def after_import() -> None:  # whether the runtime's module was loaded when it was called
        heard.append(RUNTIME_MODULE in sys.modules)

    async with open_in_background(make_settings(), ScriptedBackend(), after_import) as slot:
        with anyio.fail_after(30):
            runtime = await slot.get()
        assert runtime.registry is not None
    assert heard == [True]


async def test_without_after_import_the_runtime_opens_as_before(make_settings: Any) -> None:
    async with open_in_background(make_settings(), ScriptedBackend()) as slot:
        with anyio.fail_after(30):
            assert (await slot.get()).settings.roots
