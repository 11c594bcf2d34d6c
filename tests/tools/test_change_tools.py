"""Edit tasks through the real MCP client (in memory): spawn with edit, task_output's changes,
synthesize's conflict matrix, apply_changes (dry run, apply, undo) and discard_changes, on a repository
with uncommitted user edits and a fake agent CLI that edits files."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import Settings
from server.config.commands import CommandSpec
from tests.fake_api import FakeApi
from tests.server.changes.conftest import editor_on_path, repo
from tests.server.changes.fake_editors import edits, run_git
from tests.tools.test_handlers import call, connect, error

pytestmark = pytest.mark.anyio
__all__ = ["editor_on_path", "repo"]  # the fixtures this test shares with the engine's


async def test_edit_tasks_from_spawn_to_apply_undo_and_discard(
    fake_api: FakeApi, repo: Path, editor_on_path: Path
) -> None:
    settings = Settings(roots=(repo,), commands={"editor": CommandSpec(argv=("editor",))}, backend="editor")
    tasks = [
        {"task": edits({"lib.py": "X = 2\n"}), "label": "lib", "scope": ["lib.py"]},
        {"task": edits({"api.py": "API = 1\n", "docs.md": "d\n"}), "label": "api", "scope": ["api.py"]},
        {"task": edits({"lib.py": "X = 3\n"}), "label": "clash"},
    ]
    async with connect(settings) as client:
        spawned = await call(client, "spawn_parallel", tasks=tasks, edit=True)
        group = spawned["group_id"]
        lib, api, clash = spawned["task_ids"]
        out = await call(client, "task_output", group_id=group, wait_s=30)
        assert out["done"]
        changes = {t["task_id"]: t["changes"] for t in out["tasks"]}
        assert [f["path"] for f in changes[lib]["files"]] == ["lib.py"]
        assert changes[api]["outside_scope"] == ["docs.md"]
        patch = await call(client, "task_patch", task_id=lib)
        assert "+X = 2" in patch["patch"]

        merged = await call(client, "synthesize", group_id=group, mode="merge")
        assert [c["task_ids"] for c in merged["changes"]["conflicts"]] == [[lib, clash]]

        dry = (await call(client, "apply_changes", group_id=group))["applied"]
        assert dry["applied"] == [lib, api] and dry["skipped"][0]["paths"] == ["lib.py"]
        assert not (repo / "api.py").exists()
        done = (await call(client, "apply_changes", group_id=group, dry_run=False))["applied"]
        assert (repo / "api.py").read_text() == "API = 1\n"
        assert "the user's edit" in (repo / "app.py").read_text()
        assert "applied already" in await error(client, "apply_changes", task_ids=[lib], dry_run=False)
        assert (await call(client, "apply_changes", undo=done["apply_id"]))["undo"]["undone"]
        assert not (repo / "api.py").exists()

        gone = await call(client, "discard_changes", group_id=group)
        assert sorted(gone["discarded"]) == sorted([lib, api, clash])
    assert run_git(repo, "for-each-ref", "refs/fanout/") == ""
    assert run_git(repo, "worktree", "list").count("\n") == 1
