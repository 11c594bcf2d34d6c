"""``fanout-mcp serve`` over real HTTP on 127.0.0.1, with the Python SDK's client: bearer tokens,
DNS-rebinding protection, per-principal isolation in every tool, per-principal limits, both eras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError

from tests.answers import reply, synthesis
from tests.fake_api import FakeApi
from tests.tools.http.serving import call, serve_env, serving
from tests.tools.tasks.client import CreatedTask, TasksClient, call_as_task, cancel_task, get_task
from tools.http.tokens import add_token

#: A request that needs nothing but a caller let in: 2026-07-28's server/discover, as a client sends it.
DISCOVER = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "server/discover",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}
HEADERS = {
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "server/discover",
}


def tokens(tmp_path: Path, *names: str) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "tokens"
    return path, {name: add_token(path, name) for name in names}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_client_completes_a_twenty_task_fan_out_over_http(
    fake_api: FakeApi, tmp_path: Path, mode: str
) -> None:
    path, issued = tokens(tmp_path, "alice")
    args = ["--auth-tokens", str(path), "--root", str(tmp_path)]
    async with serving(args, serve_env(fake_api, tmp_path)) as served:
        with anyio.fail_after(90):
            async with served.client(issued["alice"], mode) as client:
                assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
                spawned = await call(
                    client,
                    "spawn_parallel",
                    tasks=[{"task": f"part {i} [[reply:answer {i}]]"} for i in range(20)],
                )
                ids: list[str] = spawned["task_ids"]
                outputs: dict[str, str] = {}
                while len(outputs) < 20:
                    collected = await call(client, "task_output", task_ids=ids, wait_s=20)
                    outputs |= {
                        v["task_id"]: v["output"] for v in collected["tasks"] if v["state"] == "completed"
                    }
                assert [outputs[i] for i in ids] == [f"answer {n}" for n in range(20)]
                merged = await call(
                    client,
                    "synthesize",
                    task_ids=ids,
                    mode="llm",
                    instructions=reply(synthesis("All.", ids[:2])),
                )
                assert merged["done"] and len(merged["sources"]) == 20
            assert await served.stop() == 0


async def test_no_token_or_a_wrong_one_gets_401_with_www_authenticate_and_a_good_one_is_served(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    path, issued = tokens(tmp_path, "alice")
    hello, headers = DISCOVER, HEADERS
    async with (
        serving(["--auth-tokens", str(path)], serve_env(fake_api, tmp_path)) as served,
        httpx2.AsyncClient() as http,
    ):
        bare = await http.post(served.url, json=hello, headers=headers)
        wrong = await http.post(served.url, json=hello, headers={**headers, "authorization": "Bearer nope"})
        good = await http.post(
            served.url, json=hello, headers={**headers, "authorization": f"Bearer {issued['alice']}"}
        )
        health = await http.get(f"{served.base}/healthz")

    assert bare.status_code == wrong.status_code == 401
    assert bare.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert good.status_code == 200
    assert health.json()["ok"] is True


async def test_a_forged_host_is_answered_421_and_a_forged_origin_403(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    path, issued = tokens(tmp_path, "alice")
    headers = {**HEADERS, "authorization": f"Bearer {issued['alice']}"}
    ping = DISCOVER
    async with (
        serving(["--auth-tokens", str(path)], serve_env(fake_api, tmp_path)) as served,
        httpx2.AsyncClient() as http,
    ):
        host = await http.post(served.url, json=ping, headers={**headers, "host": "evil.example:80"})
        origin = await http.post(served.url, json=ping, headers={**headers, "origin": "http://evil.example"})
        local = await http.post(served.url, json=ping, headers={**headers, "origin": "http://localhost:3000"})

    assert host.status_code == 421
    assert origin.status_code == 403
    assert local.status_code == 200


async def test_one_principal_cannot_see_read_synthesize_cancel_or_apply_anothers_tasks_and_an_operator_can(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    path, issued = tokens(tmp_path, "alice", "bob", "root")
    args = ["--auth-tokens", str(path), "--operators", "root"]
    async with serving(args, serve_env(fake_api, tmp_path)) as served:
        with anyio.fail_after(60):
            async with (
                served.client(issued["alice"]) as alice,
                served.client(issued["bob"]) as bob,
                served.client(issued["root"]) as root,
            ):
                spawned = await call(
                    alice, "spawn_parallel", tasks=[{"task": "[[hold]] a"}, {"task": "[[hold]] b"}]
                )
                ids, group = spawned["task_ids"], spawned["group_id"]
                await call(bob, "spawn_parallel", tasks=[{"task": "[[reply:bob]]"}])

                for tool, arguments in [
                    ("task_output", {"task_ids": ids[:1], "wait_s": 0}),
                    ("task_output", {"group_id": group, "wait_s": 0}),
                    ("synthesize", {"task_ids": ids[:1], "mode": "merge", "wait_s": 0}),
                    ("cancel_tasks", {"task_ids": ids[:1]}),
                    ("cancel_tasks", {"group_id": group}),
                    ("list_tasks", {"group_id": group}),
                    ("task_output", {"task_ids": ids[:1], "include": "patch", "wait_s": 0}),
                    ("apply_changes", {"task_ids": ids[:1]}),
                    ("apply_changes", {"group_id": group, "dry_run": False}),
                    ("apply_changes", {"group_id": group, "discard": True}),
                    ("apply_changes", {"resolve": [ids[0], ids[0]]}),
                ]:
                    assert await refusal(bob, tool, arguments, ids[0], group) == await refusal(
                        bob, tool, unknown(arguments), "t-unknown", "g-unknown"
                    ), tool
                assert (await call(bob, "list_tasks"))["total"] == 1
                assert (await call(alice, "list_tasks"))["total"] == 2
                assert (await call(root, "list_tasks"))["total"] == 3
                cancelled = await call(root, "cancel_tasks", group_id=group)
                assert sorted(cancelled["cancelled"]) == sorted(ids)
        assert await served.stop() == 0


async def test_one_principals_task_handle_is_unknown_to_another_and_an_operator_can_poll_it(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    path, issued = tokens(tmp_path, "alice", "bob", "root")
    args = ["--auth-tokens", str(path), "--operators", "root"]
    async with serving(args, serve_env(fake_api, tmp_path)) as served:
        with anyio.fail_after(60):
            async with (
                served.client(issued["alice"], extensions=[TasksClient()]) as alice,
                served.client(issued["bob"], extensions=[TasksClient()]) as bob,
                served.client(issued["root"], extensions=[TasksClient()]) as root,
            ):
                handle = await call_as_task(alice, "run_parallel", {"tasks": [{"task": "[[hold]] a"}]})
                assert isinstance(handle, CreatedTask)
                assert (await get_task(alice, handle.task_id)).status == "working"
                for attempt in (get_task, cancel_task):
                    with pytest.raises(MCPError) as refused:
                        await attempt(bob, handle.task_id)
                    with pytest.raises(MCPError) as never:
                        await attempt(bob, "g-neverexisted0000")
                    assert refused.value.error.code == never.value.error.code == -32602
                assert (await get_task(alice, handle.task_id)).status == "working"  # bob's cancel did nothing
                assert (await get_task(root, handle.task_id)).status == "working"
                await cancel_task(alice, handle.task_id)
        assert await served.stop() == 0


def unknown(arguments: dict[str, Any]) -> dict[str, Any]:
    """The same arguments with ids that never existed."""
    return {
        **arguments,
        **({"task_ids": ["t-unknown"]} if "task_ids" in arguments else {}),
        **({"group_id": "g-unknown"} if "group_id" in arguments else {}),
        **({"resolve": ["t-unknown", "t-unknown"]} if "resolve" in arguments else {}),
    }


async def refusal(client: Any, tool: str, arguments: dict[str, Any], task_id: str, group_id: str) -> str:
    """The error result's message, with the ids named written as placeholders."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, (tool, result)
    message: str = result.structured_content["error"]["message"]
    return message.replace(task_id, "<task>").replace(group_id, "<group>")


async def test_a_principal_past_its_spawns_a_minute_gets_the_limit_and_others_go_on(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    path, issued = tokens(tmp_path, "alice", "bob")
    args = ["--auth-tokens", str(path), "--max-spawns-per-minute", "1"]
    async with serving(args, serve_env(fake_api, tmp_path)) as served:
        with anyio.fail_after(60):
            async with served.client(issued["alice"]) as alice, served.client(issued["bob"]) as bob:
                await call(alice, "spawn_parallel", tasks=[{"task": "[[reply:1]]"}])
                refused = await alice.call_tool("spawn_parallel", {"tasks": [{"task": "[[reply:2]]"}]})
                await call(bob, "spawn_parallel", tasks=[{"task": "[[reply:3]]"}])

    assert refused.is_error
    error: Any = refused.structured_content
    assert error["error"]["kind"] == "limit_reached"
    assert "'alice' has made 1 spawns in the last minute" in error["error"]["message"]
    assert "--max-spawns-per-minute" in error["error"]["message"]


async def test_the_token_file_is_read_again_when_it_changes_and_tokens_never_reach_the_log(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    path, issued = tokens(tmp_path, "alice")
    ping, headers = DISCOVER, HEADERS
    args = ["--auth-tokens", str(path), "--log-level", "DEBUG"]
    async with serving(args, serve_env(fake_api, tmp_path)) as served:
        async with httpx2.AsyncClient() as http:

            async def status(token: str) -> int:
                answer = await http.post(
                    served.url, json=ping, headers={**headers, "authorization": f"Bearer {token}"}
                )
                return answer.status_code

            later = add_token(path, "bob")
            bob_added = await status(later)
            path.write_text(path.read_text().splitlines()[1] + "\n")  # alice's line removed
            alice_removed, bob_kept = await status(issued["alice"]), await status(later)
        with anyio.fail_after(30):
            assert await served.stop() == 0

    assert (bob_added, alice_removed, bob_kept) == (200, 401, 200)
    log = served.stderr.decode()
    assert '"POST /mcp HTTP/1.1" 200' in log  # the access log is on at DEBUG
    assert issued["alice"] not in log and later not in log
