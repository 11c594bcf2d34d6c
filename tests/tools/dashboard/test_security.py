"""Who may open the dashboard of ``fanout-mcp serve`` with bearer tokens, over real HTTP: nothing without
signing in, another principal's group as unknown, no change without the page's CSRF token, a strict
Content-Security-Policy on every answer."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import httpx2

from tests.fake_api import FakeApi
from tests.tools.http.serving import call, serve_env, serving
from tools.dashboard.security import CSP
from tools.http.tokens import add_token

_CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


async def sign_in(http: httpx2.AsyncClient, token: str) -> str:
    """Sign ``http`` in with ``token`` as a browser does (the cookie); its page's CSRF token."""
    first = await http.get("/", params={"token": token})
    assert first.status_code == 303 and first.headers["location"] == "/"
    page = await http.get("/")
    assert page.status_code == 200
    found = _CSRF.search(page.text)
    assert found is not None
    return found.group(1)


async def test_pages_and_event_streams_answer_401_without_signing_in_and_403_to_a_wrong_token(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    add_token(tmp_path / "tokens", "alice")
    args = ["--auth-tokens", str(tmp_path / "tokens"), "--root", str(tmp_path)]
    async with serving(args, serve_env(fake_api, tmp_path)) as served, httpx2.AsyncClient() as http:
        with anyio.fail_after(60):
            for path in ("/", "/events", "/groups/g-anything", "/groups/g-anything/events"):
                answer = await http.get(served.base + path)
                assert answer.status_code == 401, path
                assert answer.headers["content-security-policy"] == CSP
            assert (await http.get(served.base + "/", params={"token": "not-a-token"})).status_code == 403
            assert (await http.post(served.base + "/tasks/t-x/cancel")).status_code == 401


async def test_another_principals_group_is_not_found_and_a_change_needs_the_csrf_token(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    alice, bob = add_token(path, "alice"), add_token(path, "bob")
    args = ["--auth-tokens", str(path), "--root", str(tmp_path)]
    async with serving(args, serve_env(fake_api, tmp_path)) as served:
        with anyio.fail_after(90):
            async with served.client(alice) as client:
                spawned = await call(client, "spawn_parallel", tasks=[{"task": "held [[hold]]"}])
                group_id, task_id = spawned["group_id"], spawned["task_ids"][0]
                async with (
                    httpx2.AsyncClient(base_url=served.base) as as_alice,
                    httpx2.AsyncClient(base_url=served.base) as as_bob,
                ):
                    alice_csrf, bob_csrf = await sign_in(as_alice, alice), await sign_in(as_bob, bob)
                    assert group_id in (await as_alice.get("/")).text
                    assert group_id not in (await as_bob.get("/")).text
                    for url in (f"/groups/{group_id}", f"/groups/{group_id}/events"):
                        assert (await as_bob.get(url)).status_code == 404
                    cancel = f"/tasks/{task_id}/cancel"
                    assert (await as_bob.post(cancel, headers={"x-csrf-token": bob_csrf})).status_code == 404

                    assert (await as_alice.post(cancel)).status_code == 403  # no CSRF token
                    cross_site = {"x-csrf-token": alice_csrf, "origin": "http://evil.example"}
                    assert (await as_alice.post(cancel, headers=cross_site)).status_code == 403
                    assert (
                        await as_alice.post(cancel, headers={"x-csrf-token": bob_csrf})
                    ).status_code == 403
                    answer = await call(client, "task_output", task_ids=[task_id], wait_s=0)
                    assert answer["tasks"][0]["state"] == "running"

                    done = await as_alice.post(cancel, headers={"x-csrf-token": alice_csrf})
                    assert done.status_code == 200 and done.json() == {"cancelled": [task_id]}
                    answer = await call(client, "task_output", task_ids=[task_id], wait_s=10)
                    assert answer["tasks"][0]["state"] == "cancelled"


async def test_the_groups_cancel_cancels_its_unfinished_tasks_as_the_mcp_side_sees_them(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    async with serving(["--root", str(tmp_path)], serve_env(fake_api, tmp_path)) as served:
        with anyio.fail_after(90):
            async with served.client(None) as client, httpx2.AsyncClient(base_url=served.base) as http:
                tasks = [{"task": "[[reply:done]]"}, {"task": "held [[hold]]"}, {"task": "held too [[hold]]"}]
                spawned = await call(client, "spawn_parallel", tasks=tasks)
                group_id, (done, *held) = spawned["group_id"], spawned["task_ids"]
                assert (await call(client, "task_output", task_ids=[done], wait_s=30))["done"]
                start_token = re.search(rb"\?token=(\S+)", served.stderr)
                assert start_token is not None
                csrf = await sign_in(http, start_token.group(1).decode())
                answer = await http.post(f"/groups/{group_id}/cancel", headers={"x-csrf-token": csrf})
                assert answer.status_code == 200 and sorted(answer.json()["cancelled"]) == sorted(held)
                states = await call(client, "task_output", group_id=group_id, wait_s=30)
                assert [t["state"] for t in states["tasks"]] == ["completed", "cancelled", "cancelled"]
