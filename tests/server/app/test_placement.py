"""Where tasks run: the embedded default needs no Temporal package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
import anyio
from fanout_mcp.server.app.runtime import open_runtime
from fanout_mcp.server.config.settings import Settings
from fanout_mcp.tools.app import create_server

async def main() -> None:
    create_server(Settings(store="memory"))
    async with open_runtime(Settings(store="memory")) as runtime:
        assert runtime.registry.statistics().running == 0
anyio.run(main)
print(sorted({name.split(".")[0] for name in sys.modules} & {"temporalio"}), file=sys.stderr)
"""


def test_the_embedded_executor_serves_without_importing_temporalio(tmp_path: Path) -> None:
    env = {**os.environ, "ANTHROPIC_API_KEY": "unused", "XDG_STATE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
        env=env,
    )
    assert done.stderr.strip().splitlines()[-1] == "[]"
