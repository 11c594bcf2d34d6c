"""Edit tasks on a group's page: the files each changed and the conflict matrix, from the real server's
runtime (the in-memory MCP client spawns; the dashboard's app is asked over ASGI)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from server import Settings
from server.config.commands import CommandSpec
from tests.fake_api import FakeApi
from tests.server.changes.conftest import editor_on_path, repo
from tests.server.changes.fake_editors import edits
from tests.tools.test_handlers import call
from tools.app import create_server
from tools.dashboard.app import Dashboard
from tools.dashboard.security import Gate
from tools.dashboard.serving import attached

pytestmark = pytest.mark.anyio
__all__ = ["editor_on_path", "repo"]  # the fixtures this test shares with the engine's


async def test_a_group_of_edit_tasks_shows_the_files_each_changed_and_the_conflict_matrix(
    fake_api: FakeApi, repo: Path, editor_on_path: Path
) -> None:
    editor = {"editor": CommandSpec(argv=("editor",))}
    tasks = [
        {"task": edits({"lib.py": "X = 5\n"}), "label": "lib"},
        {"task": edits({"api.py": "API = 2\n", "docs.md": "e\n"}), "label": "api"},
        {"task": edits({"lib.py": "X = 6\n"}), "label": "clash"},
    ]
    settings = Settings(roots=(repo,), commands=editor, backend="editor")
    dashboard = Dashboard(Gate(verify=None, operators=(), hosts=("testserver",)))
    server = create_server(settings, dashboard=(attached(dashboard), dashboard.group_link))
    async with Client(server) as client:  # type: ignore[arg-type]
        spawned = await call(client, "spawn_parallel", tasks=tasks, edit=True)
        group = spawned["group_id"]
        assert (await call(client, "task_output", group_id=group, wait_s=30))["done"]
        transport = httpx2.ASGITransport(app=dashboard.app())
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://testserver", follow_redirects=True
        ) as http:
            page = await http.get(f"/groups/{group}", params={"token": dashboard.gate.start_token})
    assert page.status_code == 200
    rows = dict(
        re.findall(r'<tr data-edit="[^"]+"><td>(\w+)<br>.*?</td><td>\w+</td><td>(.*?)</td>', page.text)
    )
    assert rows["lib"].startswith("lib.py (") and rows["clash"].startswith("lib.py (")
    assert "api.py (" in rows["api"] and "docs.md (" in rows["api"]
    assert "<li>lib × clash: lib.py</li>" in page.text
