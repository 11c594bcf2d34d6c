"""The dashboard in a real browser (headless Chromium, ``browser.py``) beside ``fanout-mcp serve``, with
the SDK's client on ``/mcp``: a fan-out of 20 tasks against the fake Messages API, held at its gate
while the page is looked at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from playwright.async_api import Page, expect

from tests.fake_api import FakeApi
from tests.tools.dashboard.browser import DOCS, chromium, dashboard_link
from tests.tools.http.serving import call, serve_env, serving

SCRIPT_REPLY = "<script>window.injected = 1</script><b>bold?</b>"
HELD = 19  #: tasks held at the fake's gate after two deltas of their answer


def fan_out() -> list[dict[str, Any]]:
    held = [{"task": f"part {i} [[words:30]] [[hold:after=2]]", "label": f"part {i}"} for i in range(HELD)]
    return [*held, {"task": f"[[reply:{SCRIPT_REPLY}]]", "label": "script"}]


async def state_on_mcp(client: Any, task_id: str) -> str:
    answer = await call(client, "task_output", task_ids=[task_id], wait_s=0)
    return answer["tasks"][0]["state"]


async def test_a_twenty_task_fan_out_is_shown_live_and_cancelled_from_the_page(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    async with (
        serving(["--root", str(tmp_path)], serve_env(fake_api, tmp_path)) as served,
        chromium() as browser,
    ):
        with anyio.fail_after(120):
            async with served.client(None) as client:
                page = await browser.new_page()
                await page.goto(dashboard_link(served.stderr))  # signs in, then the groups page
                await expect(page.locator("#live")).to_have_text("live")
                spawned = await call(client, "spawn_parallel", tasks=fan_out())
                group_id, ids = spawned["group_id"], spawned["task_ids"]
                assert await anyio.to_thread.run_sync(fake_api.wait_held, HELD, 60)

                await page.click(f'a[href="/groups/{group_id}"]')  # the group appeared on the open page
                await expect(page.locator("#live")).to_have_text("live")
                await page.evaluate("window.notReloaded = true")

                await every_task_and_bar_shown(page, ids)
                await partial_output_shows_while_running(page, ids[0])
                await output_shows_as_text(page, ids[-1])

                await page.click(f'tr[data-task="{ids[0]}"] button.cancel')
                await expect(page.locator(f'tr[data-task="{ids[0]}"] td.state')).to_have_text("cancelled")
                assert await state_on_mcp(client, ids[0]) == "cancelled"
                await page.screenshot(path=DOCS / "dashboard.png", full_page=True)

                fake_api.release()
                await expect(page.locator("#count-completed")).to_have_text(str(HELD))  # 18 released + script
                await expect(page.locator(f'tr[data-task="{ids[1]}"] td.state')).to_have_text("completed")
                assert await page.evaluate("window.notReloaded") is True  # updated in place, never reloaded


async def every_task_and_bar_shown(page: Page, ids: list[str]) -> None:
    await expect(page.locator("#tasks tbody tr[data-task]")).to_have_count(len(ids))
    await expect(page.locator("svg#timeline g.bar")).to_have_count(len(ids))
    for task_id in ids:
        await expect(page.locator(f'tr[data-task="{task_id}"]')).to_be_visible()


async def partial_output_shows_while_running(page: Page, task_id: str) -> None:
    await expect(page.locator(f'tr[data-task="{task_id}"] td.state')).to_have_text("running")
    await expect(page.locator(f'tr[data-output="{task_id}"] pre.output')).to_contain_text("w1")
    await expect(page.locator(f'svg#timeline g.bar[data-task="{task_id}"] rect.running')).to_have_count(1)


async def output_shows_as_text(page: Page, task_id: str) -> None:
    output = page.locator(f'tr[data-output="{task_id}"] pre.output')
    await expect(output).to_have_text(SCRIPT_REPLY)
    assert await output.locator("script, b").count() == 0
    assert await page.evaluate("window.injected") is None
