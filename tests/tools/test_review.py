"""A perspective review of a small fixture repository, end to end through the MCP client: four findings
subagents (the fake answers with overlapping and conflicting findings) and one that fails; then the
deterministic merge and a model synthesis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server import Settings
from tests.answers import finding, reply, synthesis, then
from tests.fake_api import FakeApi
from tools import create_server

MakeSettings = Callable[..., Settings]
SHOP = Path(__file__).resolve().parents[1] / "fixtures" / "shop"

ANSWERS = {
    "security": [
        finding("SQL injection in login", "critical", "app/auth.py", 7, "Use a parameterised query", 0.95),
        finding(
            "Session cookie is not HttpOnly", "medium", "app/auth.py", 11, "Set httponly on the cookie", 0.8
        ),
    ],
    "performance": [
        finding(
            "Login query built from user input (SQL injection)",
            "high",
            "app/auth.py",
            8,
            "Bind parameters",
            0.7,
        ),
        finding("N+1 queries in list_users", "high", "db/users.py", 5, "Fetch all users in one query", 0.9),
        finding("Cache too small", "low", "app/cache.py", 3, "Increase the cache size", 0.6),
    ],
    "testing": [
        finding(
            "SQL injection risk in login", "critical", "./app/auth.py", 7, "Parameterise the query", 0.85
        ),
        finding("Cache size", "low", "app/cache.py", 3, "Decrease the cache size to save memory", 0.5),
    ],
    "architecture": [
        finding("N+1 query pattern in list_users", "medium", "db/users.py", 5, "Batch the lookups", 0.75),
    ],
}
FILES = {"security": ["app/auth.py"], "performance": ["app/auth.py", "db/users.py", "app/cache.py"],
         "testing": ["app/auth.py", "app/cache.py"], "architecture": ["db/users.py", "web/views.py"]}  # fmt: skip


async def review(client: Client) -> tuple[dict[str, Any], dict[str, str]]:
    tasks: list[dict[str, Any]] = [
        {"label": view, "role": f"{view} reviewer", "task": f"Review the shop for {view}. " + reply({"findings": found}),
         "files": FILES[view]}
        for view, found in ANSWERS.items()
    ]  # fmt: skip
    tasks.append({"label": "accessibility", "task": "Review the views for accessibility [[fail:500;count=99]]",
                  "files": ["web/views.py"], "timeout_s": 0.5})  # fmt: skip
    spawned = await client.call_tool("spawn_parallel", {"tasks": tasks, "output_schema": "findings"})
    content: Any = spawned.structured_content
    ids = dict(zip([t["label"] for t in tasks], content["task_ids"], strict=True))
    collected: Any = await client.call_tool("task_output", {"group_id": content["group_id"], "wait_s": 20})
    assert collected.structured_content["done"]
    return content, ids


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_perspective_review_merges_duplicates_shows_conflicts_and_lists_the_failed_task(
    fake_api: FakeApi, make_settings: MakeSettings, mode: str
) -> None:
    async with Client(create_server(make_settings(roots=(SHOP,))), mode=mode) as client:  # type: ignore[arg-type]
        spawned, ids = await review(client)
        result: Any = await client.call_tool("synthesize", {"group_id": spawned["group_id"], "mode": "merge"})
    merged = result.structured_content
    findings = {f["title"]: f for f in merged["findings"]}
    sql = findings["SQL injection in login"]  # three perspectives, three wordings, lines 7-8: one finding
    assert sql["sources"] == [ids["security"], ids["performance"], ids["testing"]] and sql["support"] == 3
    assert sql["severity"] == "critical" and sql["location"]["start_line"] == 7
    n_plus_one = findings["N+1 queries in list_users"]
    assert n_plus_one["sources"] == [ids["performance"], ids["architecture"]]
    assert sum("SQL injection" in f["title"] for f in merged["findings"]) == 1
    assert sum("N+1" in f["title"] for f in merged["findings"]) == 1
    assert [f["title"] for f in merged["findings"]][:2] == [
        "SQL injection in login",
        "N+1 queries in list_users",
    ]

    sides = {c["topic"]: {s["position"]: s["sources"] for s in c["sides"]} for c in merged["conflicts"]}
    assert sides["SQL injection in login"] == {
        "severity critical": [ids["security"], ids["testing"]],
        "severity high": [ids["performance"]],
    }
    assert sides["N+1 queries in list_users"] == {
        "severity high": [ids["performance"]],
        "severity medium": [ids["architecture"]],
    }
    cache = next(s for topic, s in sides.items() if "ache" in topic and "severity low" not in s)
    assert cache == {"Increase the cache size": [ids["performance"]],
                     "Decrease the cache size to save memory": [ids["testing"]]}  # fmt: skip

    (missing,) = merged["missing"]
    assert missing["label"] == "accessibility" and missing["state"] == "failed"
    assert "accessibility" in merged["summary"]
    assert merged["actions"][0]["action"] == "Use a parameterised query"
    assert "markdown" not in merged  # every answer was findings: they are in findings, not rendered twice


async def test_a_model_synthesis_of_the_review_is_checked_and_repaired(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with Client(create_server(make_settings(roots=(SHOP,)))) as client:
        spawned, ids = await review(client)
        cites_a_stranger = synthesis("Fix the injection.", [ids["security"], "t-made-up"])
        good = synthesis("Fix the injection first.", [ids["security"], ids["testing"]])
        instructions = "Rank by exploitability. " + reply(cites_a_stranger) + " " + then(good)
        result: Any = await client.call_tool(
            "synthesize",
            {"group_id": spawned["group_id"], "mode": "llm", "instructions": instructions, "wait_s": 20},
        )
    answer = result.structured_content
    assert answer["done"] and answer["mode"] == "llm"
    assert answer["findings"][0]["sources"] == [ids["security"], ids["testing"]]
    assert "accessibility" in answer["summary"]  # the failed task is named even though the model did not
    first, repair = [
        r for r in fake_api.requests if "Rank by exploitability" in r.body["messages"][0]["content"]
    ]
    prompt = first.body["messages"][0]["content"]
    for view in ANSWERS:
        assert f'<answer task_id="{ids[view]}" label="{view}" role="{view} reviewer">' in prompt
    assert ids["accessibility"] in prompt.split("Missing", 1)[1]
    assert "t-made-up" in repair.body["messages"][2]["content"]  # the unknown id is caught and sent back
    assert first.body["output_config"]["format"]["type"] == "json_schema"


async def test_a_synthesis_that_stays_invalid_falls_back_to_a_merge_and_says_so(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with Client(create_server(make_settings(roots=(SHOP,)))) as client:
        spawned, _ = await review(client)
        result: Any = await client.call_tool(
            "synthesize", {"group_id": spawned["group_id"], "mode": "llm", "instructions": "[[reply:no json]]",
                           "wait_s": 20},
        )  # fmt: skip
    answer = result.structured_content
    assert answer["mode"] == "merge" and answer["findings"]
    assert any(
        "This is a merge instead" in n and "did not fit the output schema" in n for n in answer["notes"]
    )
    assert answer["usage"]["output_tokens"] > 0  # the failed synthesis calls are still counted


async def test_answers_too_long_for_one_call_are_synthesised_in_groups_then_merged(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    long_answers = [{"task": f"part {i} [[words:600]]", "label": f"p{i}"} for i in range(3)]
    async with Client(create_server(make_settings(synthesis_input_chars=4_000))) as client:
        spawned: Any = (await client.call_tool("spawn_parallel", {"tasks": long_answers})).structured_content
        await client.call_tool("task_output", {"group_id": spawned["group_id"], "wait_s": 20})
        instructions = reply(synthesis("Merged from parts."))  # every level answers this, citing nothing
        result: Any = await client.call_tool(
            "synthesize",
            {"group_id": spawned["group_id"], "mode": "llm", "instructions": instructions, "wait_s": 20},
        )
    answer = result.structured_content
    assert answer["done"] and answer["summary"] == "Merged from parts."
    synthesis_requests = [r for r in fake_api.requests if r.body["system"][0]["text"].startswith("You merge")]
    group_prompts = [r.body["messages"][0]["content"] for r in synthesis_requests[:-1]]
    assert len(group_prompts) >= 2  # 3 x ~4,000 characters do not fit in one 4,000-character call
    for task_id in spawned["task_ids"]:  # every answer went into some group, in full (split, never cut)
        assert any(f'task_id="{task_id}"' in prompt for prompt in group_prompts)
    total_words = sum(prompt.count(" w") for prompt in group_prompts)
    assert total_words >= 3 * 599
    final = synthesis_requests[-1].body["messages"][0]["content"]
    assert "Results of the tasks this task depends on" in final and "synthesised in groups" in final
