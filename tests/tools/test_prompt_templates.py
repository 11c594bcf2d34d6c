"""The parallel patterns as MCP prompts: listed, rendered with arguments, refused outside the roots."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import Client, MCPError
from mcp_types import TextContent

from server import Settings
from tests.fake_api import FakeApi
from tools import create_server

MakeSettings = Callable[..., Settings]
SHOP = Path(__file__).resolve().parents[1] / "fixtures" / "shop"


async def render(client: Client, name: str, arguments: dict[str, str]) -> str:
    result = await client.get_prompt(name, arguments)
    block = result.messages[0].content
    assert isinstance(block, TextContent)
    return block.text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_three_patterns_are_listed_with_their_arguments(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with Client(create_server(make_settings()), mode=mode) as client:  # type: ignore[arg-type]
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) == {"parallel_tasks", "parallel_directories", "parallel_perspectives"}
    required = {name: [a.name for a in p.arguments or [] if a.required] for name, p in prompts.items()}
    assert required == {"parallel_tasks": ["items"], "parallel_directories": ["path", "task"],
                        "parallel_perspectives": ["target"]}  # fmt: skip
    assert all(p.description for p in prompts.values())


async def test_parallel_tasks_builds_one_task_per_item_with_the_checks_first(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with Client(create_server(make_settings())) as client:
        text = await render(client, "parallel_tasks", {"items": "- write the login endpoint\n- add a schema\n",
                                                       "goal": "user accounts"})  # fmt: skip
    assert text.index("independent") < text.index("spawn_parallel")
    assert '"task": "write the login endpoint"' in text and '"task": "add a schema"' in text
    assert '"shared_context": "user accounts"' in text
    assert "task_output" in text and "synthesize" in text


async def test_parallel_directories_lists_the_real_directories_and_their_files(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with Client(create_server(make_settings(roots=(SHOP,)))) as client:
        text = await render(client, "parallel_directories", {"path": ".", "task": "review for bugs"})
    assert "3 directories" in text
    listed = dict(re.findall(r"^- (\S+): .*\n  files: (.*)$", text, re.MULTILINE))
    assert set(listed) == {"app", "db", "web"}
    assert json.loads(listed["app"]) == ["app/auth.py", "app/cache.py"]
    assert json.loads(listed["web"]) == ["web/views.py"]


async def test_parallel_directories_refuses_a_path_outside_the_roots(
    fake_api: FakeApi, make_settings: MakeSettings, tmp_path: Path
) -> None:
    async with Client(create_server(make_settings(roots=(SHOP,)))) as client:
        with pytest.raises(MCPError, match="outside the allowed roots"):
            await client.get_prompt("parallel_directories", {"path": str(tmp_path), "task": "review"})
        with pytest.raises(MCPError, match="not a directory"):
            await client.get_prompt("parallel_directories", {"path": "app/auth.py", "task": "review"})
        assert (await client.list_prompts()).prompts  # still serving


async def test_parallel_perspectives_uses_findings_and_a_merge(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with Client(create_server(make_settings())) as client:
        text = await render(
            client, "parallel_perspectives", {"target": "the login flow", "files": "app/auth.py"}
        )
        custom = await render(
            client, "parallel_perspectives", {"target": "x", "perspectives": "cost, latency"}
        )
    assert '"output_schema": "findings"' in text and 'mode="merge"' in text
    for view in ["security", "performance", "testing", "architecture"]:
        assert f'"label": "{view}"' in text
    assert '"files": ["app/auth.py"]' in text
    assert '"label": "cost"' in custom and '"label": "security"' not in custom


async def test_odd_paths_get_a_clear_error_and_long_directory_lists_are_capped(
    fake_api: FakeApi, make_settings: MakeSettings, tmp_path: Path
) -> None:
    for i in range(5):
        (tmp_path / f"d{i}").mkdir()
    async with Client(create_server(make_settings(roots=(tmp_path,), max_tasks_per_spawn=3))) as client:
        with pytest.raises(MCPError, match="home directory that does not exist"):
            await client.get_prompt("parallel_directories", {"path": "~no-such-user-fanout", "task": "x"})
        text = await render(client, "parallel_directories", {"path": ".", "task": "review"})
    assert "3 directories" in text and "There are 5 directories; only the first 3" in text
