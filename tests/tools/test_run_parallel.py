"""run_parallel for a client that runs no tool call as a task: spawn_parallel, then task_output and
synthesize, within one bounded wait, through the real MCP client in memory, in both protocol eras."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.fake_api import FakeApi
from tests.tools.test_handlers import MakeSettings, call, error
from tools import create_server

HELD = [{"task": "[[hold]]", "label": "a"}, {"task": "[[hold]]", "label": "b"}]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_without_tasks_gets_run_parallels_plain_result_within_the_servers_wait(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with Client(create_server(make_settings(max_wait_s=0.5)), mode=mode) as client:  # type: ignore[arg-type]
        answer = await call(client, "run_parallel", tasks=HELD, wait_s=30)
        assert not answer["done"] and answer["synthesis"] is None
        assert f'task_output(group_id="{answer["group_id"]}")' in answer["next"]
        fake_api.release()
        done = await call(client, "run_parallel", tasks=[{"task": "[[reply:one]]"}], mode="merge")
    assert done["done"] and done["synthesis"]["mode"] == "merge"
    assert done["outputs"]["tasks"][0]["output"] == "one"


async def test_a_run_whose_outputs_are_cut_short_says_how_to_read_the_rest(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    tasks = [{"task": "[[words:3000]]"}, {"task": "[[words:3000]]"}]
    async with Client(create_server(make_settings(max_output_chars=6_000))) as client:
        answer = await call(client, "run_parallel", tasks=tasks, mode="merge")
    assert answer["done"] and all(task["truncated"] for task in answer["outputs"]["tasks"])
    assert "task_output(task_ids=[that id], offset=next_offset)" in answer["next"]
    assert answer["outputs"]["next"] == answer["next"]


async def test_run_parallel_takes_spawn_parallels_edit_for_the_whole_spawn(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with Client(create_server(make_settings())) as client:
        refused = await error(
            client, "run_parallel", tasks=[{"task": "[[reply:x]] change a file"}], edit=True
        )
    assert "is not in a git work tree" in refused  # the spawn was an edit spawn: its root is no repository
    assert fake_api.requests == []
