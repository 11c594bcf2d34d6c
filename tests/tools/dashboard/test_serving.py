"""A stdio server started with ``--dashboard``: the dashboard on a loopback port, its link on stderr and
in ``task_output``'s text, and gone when the server stops."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import httpx2

from tests.fake_api import FakeApi
from tests.tools.served import command_line, env_for, served

_LINK = re.compile(rb"dashboard: (http://127\.0\.0\.1:(\d+)/\?token=\S+)")


async def test_a_stdio_server_serves_its_dashboard_while_it_runs_and_links_it_from_task_output(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    env = env_for(tmp_path, ANTHROPIC_BASE_URL=fake_api.base_url, ANTHROPIC_API_KEY="test-key")
    argv = command_line("--dashboard", "--root", str(tmp_path))
    async with served(argv, env) as server, httpx2.AsyncClient(follow_redirects=True) as http:
        with anyio.fail_after(60):
            found = await server.wait_stderr(_LINK)
            port = int(found.group(2))
            spawned = await server.call_tool("spawn_parallel", {"tasks": [{"task": "[[reply:hello there]]"}]})
            group_id = spawned["group_id"]
            answer = await server.request(
                "tools/call", {"name": "task_output", "arguments": {"group_id": group_id}}
            )
            text = " ".join(block["text"] for block in answer["content"])
            link = re.search(rf"Dashboard: (http://127\.0\.0\.1:{port}/groups/{group_id}\?token=\S+)", text)
            assert link is not None, text

            page = await http.get(link.group(1))
            assert page.status_code == 200 and "hello there" in page.text
            assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 200  # signed in: the cookie
            async with httpx2.AsyncClient() as stranger:
                assert (await stranger.get(f"http://127.0.0.1:{port}/")).status_code == 401

            await server.close_stdin()
            assert await server.exit_status() == 0
            with anyio.fail_after(5):
                try:
                    await anyio.connect_tcp("127.0.0.1", port)
                    raise AssertionError("the dashboard still listens after the server stopped")
                except OSError:
                    pass
