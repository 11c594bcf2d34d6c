"""Two installed ``fanout-mcp serve`` front ends over HTTP, with bearer tokens, and a ``fanout-mcp
worker`` process, all on one real Temporal dev server: one engine behind both replicas, each principal
kept to its own tasks on either."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from tests.answers import reply, synthesis
from tests.fake_api import FakeApi
from tests.server.app.test_worker import on_queue, script_env, worker
from tests.temporal_dev import DevServer
from tests.tools.http.serving import call, serve_env, serving
from tests.tools.http.test_serve import tokens

DIAMOND = [
    {"task": "A: start", "label": "a"},
    {"task": "B: left", "label": "b", "depends_on": ["a"]},
    {"task": "C: right", "label": "c", "depends_on": ["a"]},
    {"task": "D: join", "label": "d", "depends_on": ["b", "c"]},
]


async def outputs(client: Client, ids: list[str]) -> dict[str, str]:
    """Every task's answer, waiting for them through ``task_output`` as a client does."""
    done: dict[str, str] = {}
    while len(done) < len(ids):
        read = await call(client, "task_output", task_ids=ids, wait_s=20)
        done |= {view["task_id"]: view["output"] for view in read["tasks"] if view["state"] == "completed"}
    return done


async def test_a_diamond_spawned_on_one_http_replica_is_read_and_synthesized_on_the_other_by_its_owner_only(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path
) -> None:
    path, issued = tokens(tmp_path, "alice", "bob")
    flags = [*on_queue(temporal_server, tmp_path), "--temporal-payload-dir", str(tmp_path / "payloads")]
    env = serve_env(fake_api, tmp_path)
    with worker(flags, script_env(fake_api)), anyio.fail_after(120):
        async with (
            serving(["--auth-tokens", str(path), *flags], env) as one,
            serving(["--auth-tokens", str(path), *flags], env) as two,
            one.client(issued["alice"]) as alice_on_one,
            two.client(issued["alice"]) as alice_on_two,
            two.client(issued["bob"]) as bob_on_two,
        ):
            ids: list[str] = (await call(alice_on_one, "spawn_parallel", tasks=DIAMOND))["task_ids"]
            answers = await outputs(alice_on_two, ids)
            refused: Any = await bob_on_two.call_tool("task_output", {"task_ids": ids})
            bobs = await call(bob_on_two, "list_tasks")
            ask: dict[str, Any] = {"task_ids": ids, "mode": "llm"}
            ask["instructions"] = reply(synthesis("All four agree.", ids[:2]))
            merged_on_two = await call(alice_on_two, "synthesize", **ask)
            merged_on_one = await call(alice_on_one, "synthesize", **ask)  # the same one, not another

    assert sorted(answers) == sorted(ids) and all(answers.values())
    prompts = [json.dumps(r.body) for r in fake_api.requests if r.path == "/v1/messages"]
    order = {label: next(n for n, p in enumerate(prompts) if f"{label}: " in p) for label in "ABCD"}
    assert order["A"] < min(order["B"], order["C"]) and max(order["B"], order["C"]) < order["D"]
    assert refused.is_error and "no task with id" in refused.content[0].text
    assert bobs["total"] == 0
    assert merged_on_two["done"] and merged_on_two["summary"] == "All four agree."
    assert merged_on_one == merged_on_two
    assert len(prompts) == 5  # four tasks and one synthesis, asked once for both replicas
