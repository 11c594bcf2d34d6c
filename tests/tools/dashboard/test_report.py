"""The run report: ``fanout-mcp run PLAN --report FILE`` and ``fanout-mcp report GROUP_ID``, one HTML file
that a browser opens from disk with the network off, showing what ``task_output`` showed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
from playwright.async_api import Request, expect

from tests.fake_api import FakeApi
from tests.tools.cli.test_main import run_script, script_env
from tests.tools.dashboard.browser import DOCS, chromium
from tests.tools.served import command_line, env_for, served

SCRIPT_REPLY = "<script>window.injected = 1</script>"


def money(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"


async def fan_out_collected(fake_api: FakeApi, home: Path, store: Path) -> dict[str, Any]:
    """Four tasks (one fails) run by a stdio server on ``store``; what task_output said of them."""
    env = env_for(home, ANTHROPIC_BASE_URL=fake_api.base_url, ANTHROPIC_API_KEY="test-key")
    async with served(command_line("--root", str(home), "--store", str(store)), env) as server:
        tasks = [
            {"task": "[[reply:the cache is cold]]", "label": "cache"},
            {"task": "[[words:120]]", "label": "long"},
            {"task": f"[[reply:{SCRIPT_REPLY}]]", "label": "script"},
            {"task": "[[fail:400;message=bad request]]", "label": "broken"},
        ]
        spawned = await server.call_tool("spawn_parallel", {"tasks": tasks})
        answer = await server.call_tool("task_output", {"group_id": spawned["group_id"], "wait_s": 30})
        assert answer["done"], answer
        await server.close_stdin()
        assert await server.exit_status() == 0
    return answer


async def test_the_report_of_a_stored_group_opens_offline_with_the_numbers_task_output_gave(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    store, report = tmp_path / "tasks.db", tmp_path / "run.html"
    with anyio.fail_after(120):
        answer = await fan_out_collected(fake_api, tmp_path, store)
        group_id = answer["groups"][0]["group_id"]
        done = await anyio.to_thread.run_sync(
            lambda: run_script(
                "report", group_id, "--store", str(store), "-o", str(report), env=script_env(fake_api)
            )
        )
        assert done.returncode == 0, done.stderr

        async with chromium() as browser:
            context = await browser.new_context(offline=True)
            fetched: list[str] = []

            def note(request: Request) -> None:
                if not request.url.startswith("file:"):
                    fetched.append(request.url)

            context.on("request", note)
            page = await context.new_page()
            await page.goto(report.as_uri())
            for task in answer["tasks"]:
                row = page.locator(f'#tasks tr[data-task="{task["task_id"]}"]')
                await expect(row.locator("td.state")).to_have_text(task["state"])
                await expect(row.locator("td.input-tokens")).to_have_text(str(task["usage"]["input_tokens"]))
                await expect(row.locator("td.output-tokens")).to_have_text(
                    str(task["usage"]["output_tokens"])
                )
                await expect(row.locator("td.cost")).to_have_text(money(task["usage"]["cost_usd"]))
                output = page.locator(f'pre[data-output="{task["task_id"]}"]')
                await expect(output).to_have_text(task.get("output") or "")
            usage = answer["usage"]
            await expect(page.locator("#total-cost")).to_have_text(money(usage["cost_usd"]))
            await expect(page.locator("#total-tokens")).to_have_text(
                f"{usage['input_tokens']} in / {usage['output_tokens']} out"
            )
            await expect(page.locator("svg#timeline g.bar")).to_have_count(4)
            await expect(page.locator("#missing")).to_contain_text("broken")
            assert await page.evaluate("window.injected") is None
            await page.screenshot(path=DOCS / "report.png", full_page=True)
            assert fetched == []


def test_run_writes_a_self_contained_report_with_every_output_the_synthesis_and_the_settings(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    plan, report = tmp_path / "plan.json", tmp_path / "run.html"
    tasks = [{"task": f"[[reply:answer {i} <i>x</i>]]", "label": f"part {i}"} for i in range(3)]
    plan.write_text(json.dumps({"tasks": tasks, "synthesis": {"mode": "merge"}}))
    args = ["run", str(plan), "--report", str(report), "--root", str(tmp_path), "--store", "memory"]
    done = run_script(*args, env=script_env(fake_api))
    assert done.returncode == 0, done.stderr
    html = report.read_text(encoding="utf-8")
    for i in range(3):
        assert f"answer {i} &lt;i&gt;x&lt;/i&gt;" in html
    assert len(re.findall(r'<g class="bar state-completed"', html)) == 3
    assert len(re.findall(r'<rect class="running"', html)) == 3  # seen running: each bar has its run
    assert '<section class="synthesis" id="synthesis">' in html and "<b>merge</b>" in html
    assert "<th>--max-concurrency</th>" in html
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy is not None and policy.group(1).startswith("default-src 'none'; style-src 'sha256-")
    assert "<script" not in html and "http://" not in html and "https://" not in html
