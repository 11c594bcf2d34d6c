"""Edit tasks through the real MCP client (in memory): spawn with edit, task_output's changes and
patches, synthesize's conflict matrix, apply_changes (dry run, apply, undo, discard), each with its next
call, on a repository with uncommitted user edits and a fake agent CLI that edits files."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import Settings
from server.config.commands import CommandSpec
from tests.fake_api import FakeApi
from tests.server.changes.checks_kit import CHECKS
from tests.server.changes.conftest import editor_on_path, repo
from tests.server.changes.fake_editors import edits, run_git, says
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
        patches = await call(client, "task_output", group_id=group, include="patch")
        assert "+X = 2" in {t["task_id"]: t["output"] for t in patches["tasks"]}[lib]
        assert patches["next"] == f'apply_changes(group_id="{group}") to see what would apply.'

        merged = await call(client, "synthesize", group_id=group, mode="merge")
        assert [c["task_ids"] for c in merged["changes"]["conflicts"]] == [[lib, clash]]

        dry = await call(client, "apply_changes", group_id=group)
        assert dry["applied"]["applied"] == [lib, api] and dry["applied"]["skipped"][0]["paths"] == ["lib.py"]
        assert (
            dry["next"].startswith(f'apply_changes(group_id="{group}", dry_run=false)')
            and clash in dry["next"]
        )
        assert not (repo / "api.py").exists()
        done = await call(client, "apply_changes", group_id=group, dry_run=False)
        apply_id = done["applied"]["apply_id"]
        assert f'apply_changes(undo="{apply_id}")' in done["next"]
        assert (repo / "api.py").read_text() == "API = 1\n"
        assert "the user's edit" in (repo / "app.py").read_text()
        assert "applied already" in await error(client, "apply_changes", task_ids=[lib], dry_run=False)
        undone = await call(client, "apply_changes", undo=apply_id)
        assert undone["undo"]["undone"] and undone["next"].startswith("Undone")
        assert not (repo / "api.py").exists()

        gone = await call(client, "apply_changes", group_id=group, discard=True)
        assert sorted(gone["discarded"]) == sorted([lib, api, clash])
        assert gone["next"].startswith("Nothing more")
    assert run_git(repo, "for-each-ref", "refs/fanout/") == ""
    assert run_git(repo, "worktree", "list").count("\n") == 1


async def test_a_patch_is_paged_like_an_output_and_a_task_that_edits_nothing_has_none(
    fake_api: FakeApi, repo: Path, editor_on_path: Path
) -> None:
    settings = Settings(roots=(repo,), commands={"editor": CommandSpec(argv=("editor",))}, backend="editor")
    async with connect(settings) as client:
        edit = await call(
            client, "spawn_parallel", tasks=[{"task": edits({"lib.py": "X = 2\n" * 40})}], edit=True
        )
        plain = await call(client, "spawn_parallel", tasks=[{"task": "look only"}], wait_s=30)
        [task_id] = edit["task_ids"]
        await call(client, "task_output", task_ids=[task_id], wait_s=30)
        first = await call(client, "task_output", task_ids=[task_id], include="patch", max_chars=100)
        [page] = first["tasks"]
        assert page["truncated"] and page["next_offset"] == 100
        assert f'task_output(task_ids=["{task_id}"], offset=100, include="patch")' in first["next"]
        rest = await call(
            client, "task_output", task_ids=[task_id], include="patch", offset=100, max_chars=9_000
        )
        whole = page["output"] + rest["tasks"][0]["output"]
        assert whole.startswith("diff --git a/lib.py b/lib.py") and whole.count("+X = 2") == 40
        refused = await error(client, "task_output", task_ids=plain["task_ids"], include="patch")
        assert "not edit tasks, so no patch" in refused


def resolving_tasks(resolution: dict[str, str | None]) -> list[dict[str, object]]:
    """lib and clash change lib.py's one line each, and more besides; api another file. clash answers
    with directives that a task quoting its answer acts on: show lib.py as found, then write
    ``resolution``."""
    return [
        {"task": edits({"lib.py": "X = 2\n", "lib_extra.py": "E = 1\n"}), "label": "lib"},
        {"task": edits({"api.py": "API = 1\n"}), "label": "api"},
        {
            "task": edits({"lib.py": "X = 3\n", "clash_new.py": "C = 1\n"})
            + says("[[cat:lib.py]] " + edits(resolution)),
            "label": "clash",
        },
    ]


async def test_resolve_starts_an_edit_task_on_the_merge_with_markers_whose_set_holds_both_and_applies(
    fake_api: FakeApi, repo: Path, editor_on_path: Path
) -> None:
    settings = Settings(roots=(repo,), commands={"editor": CommandSpec(argv=("editor",))}, backend="editor")
    async with connect(settings) as client:
        spawned = await call(
            client, "spawn_parallel", tasks=resolving_tasks({"lib.py": "X = 23\n"}), edit=True
        )
        lib, api, clash = spawned["task_ids"]
        await call(client, "task_output", group_id=spawned["group_id"], wait_s=30)
        dry = await call(client, "apply_changes", task_ids=[lib, api, clash])
        assert "apply_changes(resolve=[...])" in dry["next"]

        started = await call(client, "apply_changes", resolve=[lib, clash])
        resolver = started["resolving"]["task_id"]
        assert started["resolving"]["conflicts"] == ["lib.py"]
        assert started["next"].startswith(f'task_output(task_ids=["{resolver}"], wait_s=120)')
        out = await call(client, "task_output", task_ids=[resolver], wait_s=30)
        [task] = out["tasks"]
        # What the agent found in its worktree: both sides of the conflict, each named by its task's ref.
        found = task["output"]
        assert f"<<<<<<< refs/fanout/{spawned['group_id']}/{lib}\nX = 2\n=======\nX = 3\n>>>>>>>" in found
        # Its change set, against the tasks' base: both tasks' work and the resolution.
        changed = {f["path"]: f["status"] for f in task["changes"]["files"]}
        assert changed == {"clash_new.py": "added", "lib.py": "modified", "lib_extra.py": "added"}

        done = await call(client, "apply_changes", task_ids=[api, resolver], dry_run=False)
        assert done["applied"]["applied"] == [api, resolver]
    assert (repo / "lib.py").read_text() == "X = 23\n" and (repo / "lib_extra.py").read_text() == "E = 1\n"
    assert (repo / "clash_new.py").exists() and (repo / "api.py").exists()
    assert "the user's edit" in (repo / "app.py").read_text()


async def test_resolve_refuses_with_nothing_started_or_written(
    fake_api: FakeApi, repo: Path, editor_on_path: Path
) -> None:
    settings = Settings(roots=(repo,), commands={"editor": CommandSpec(argv=("editor",))}, backend="editor")
    async with connect(settings) as client:
        spawned = await call(client, "spawn_parallel", tasks=resolving_tasks({}), edit=True)
        lib, api, clash = spawned["task_ids"]
        plain = (await call(client, "spawn_parallel", tasks=[{"task": "look only"}]))["task_ids"][0]
        held = await call(
            client, "spawn_parallel", tasks=[{"task": "[[hold]]", "backend": "anthropic"}], edit=True
        )
        await call(client, "task_output", task_ids=[lib, api, clash, plain], wait_s=30)
        refs, listed = run_git(repo, "for-each-ref"), run_git(repo, "worktree", "list")

        assert "two or more edit tasks" in await error(client, "apply_changes", resolve=[lib, lib])
        assert "not an edit task" in await error(client, "apply_changes", resolve=[lib, plain])
        unfinished = await error(client, "apply_changes", resolve=[lib, held["task_ids"][0]])
        assert "not finished yet" in unfinished
        unknown = await error(client, "apply_changes", resolve=[lib, "t-neverexisted"])
        assert "t-neverexisted" in unknown and "list_tasks" in unknown
        apart = await error(client, "apply_changes", resolve=[lib, api])
        assert f'do not conflict: apply_changes(task_ids=["{lib}", "{api}"])' in apart
        assert run_git(repo, "for-each-ref") == refs and run_git(repo, "worktree", "list") == listed
        assert (await call(client, "list_tasks"))["total"] == 5  # no resolving task was started
        fake_api.release()


async def test_task_output_carries_verify_results_and_list_tasks_each_groups_worktree_disk_use(
    fake_api: FakeApi, repo: Path, editor_on_path: Path
) -> None:
    commands = {
        "editor": CommandSpec(argv=("editor",)),
        "tests": CHECKS["passes"],
        "lint": CHECKS["fails"],
    }
    settings = Settings(roots=(repo,), commands=commands, backend="editor")
    task = {"task": edits({"lib.py": "X = 2\n"}), "verify": ["tests", "lint"]}
    async with connect(settings) as client:
        refused = await error(client, "spawn_parallel", tasks=[{**task, "verify": ["pytest"]}], edit=True)
        assert "'pytest' is not a configured command (configured: editor, lint, tests)" in refused
        spawned = await call(client, "spawn_parallel", tasks=[task], edit=True)
        out = await call(client, "task_output", group_id=spawned["group_id"], wait_s=30)
        verify = out["tasks"][0]["changes"]["verify"]
        assert [(v["name"], v["exit_code"]) for v in verify] == [("tests", 0), ("lint", 1)]
        assert "1 failed: test_lib" in verify[1]["output"]
        listed = await call(client, "list_tasks")
        assert listed["worktree_bytes"][spawned["group_id"]] > 0
