"""``serve`` as an OAuth 2.1 resource server: tokens checked at a fake issuer's introspection endpoint
on 127.0.0.1, protected-resource metadata served as the MCP authorization spec asks, the token's subject
as the principal."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2

from tests.fake_api import FakeApi
from tests.tools.http.fake_issuer import CLIENT, fake_issuer
from tests.tools.http.serving import call, serve_env, serving

TOKENS = {
    "tok-carol": {"active": True, "sub": "carol", "client_id": "editor", "scope": "mcp"},
    "tok-dave": {"active": True, "sub": "dave", "client_id": "editor"},
    "tok-expired": {"active": False},
    "tok-elsewhere": {"active": True, "sub": "carol", "aud": "https://other.example/mcp"},
}


async def test_tokens_are_checked_at_the_issuer_and_their_subject_is_the_principal(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(CLIENT[1] + "\n")
    with fake_issuer(TOKENS) as (issuer, asked):
        args = [
            "--oauth-issuer", issuer, "--oauth-introspection", f"{issuer}/introspect",
            "--oauth-client-id", CLIENT[0], "--oauth-client-secret-file", str(secret),
        ]  # fmt: skip
        async with serving(args, serve_env(fake_api, tmp_path)) as served:
            async with httpx2.AsyncClient() as http:
                metadata = await http.get(f"{served.base}/.well-known/oauth-protected-resource/mcp")
                bare = await http.post(served.url, json={})
                statuses = [
                    (
                        await http.post(served.url, json={}, headers={"authorization": f"Bearer {t}"})
                    ).status_code
                    for t in ("tok-expired", "tok-elsewhere", "tok-unknown")
                ]
            with anyio.fail_after(60):
                async with served.client("tok-carol") as carol, served.client("tok-dave") as dave:
                    spawned = await call(carol, "spawn_parallel", tasks=[{"task": "[[reply:hi]]"}])
                    carols, daves = await call(carol, "list_tasks"), await call(dave, "list_tasks")

    assert metadata.status_code == 200
    assert metadata.json()["resource"] == served.url
    # The SDK writes the issuer as a URL with its root path: the same issuer.
    assert [url.rstrip("/") for url in metadata.json()["authorization_servers"]] == [issuer]
    assert bare.status_code == 401
    assert (
        f'resource_metadata="{served.base}/.well-known/oauth-protected-resource/mcp"'
        in bare.headers["www-authenticate"]
    )
    assert statuses == [401, 401, 401]
    assert [t["task_id"] for t in carols["tasks"]] == spawned["task_ids"] and daves["total"] == 0
    assert "tok-carol" in asked
    assert "tok-carol" not in served.stderr.decode()
