"""The issue's scenario on a repository with uncommitted user edits: three edit tasks (two touch
different files, the third conflicts with the first) and one that changes nothing; the matrix, a dry
run, an apply that skips the conflicting set, undo, and a discard that leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from server import InvalidInput, Settings, SpawnRequest, TaskRequest
from server.changes.editing import state_dir
from server.changes.workshop import Workshop
from server.core.callers import Caller
from server.core.registry import TaskRegistry
from tests.server.changes.fake_editors import edits, run_git, state
from tests.server.fakes import ME

pytestmark = pytest.mark.anyio
BOB = Caller("bob")


def tree_files(repo: Path) -> dict[str, str]:
    return {
        str(p.relative_to(repo)): p.read_text()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


async def three_tasks(registry: TaskRegistry) -> tuple[str, list[str]]:
    tasks = [
        TaskRequest(task=edits({"lib.py": "X = 2\n"}), label="lib", scope=["lib.py"]),
        TaskRequest(task=edits({"api.py": "API = 1\n"}), label="api", scope=["api.py"]),
        TaskRequest(task=edits({"lib.py": "X = 3\n"}), label="clash", scope=["lib.py"]),
        TaskRequest(task="look only", label="idle"),
    ]
    receipt = await registry.spawn(SpawnRequest(tasks=tasks, edit=True), caller=ME)
    ids = [t.task_id for t in receipt.tasks]
    with anyio.fail_after(30):
        await registry.wait(ids)
    return receipt.group_id, ids


async def test_the_matrix_shows_the_one_conflicting_pair_and_the_preview_skips_it(
    registry: TaskRegistry, repo: Path
) -> None:
    _, [lib, api, clash, idle] = await three_tasks(registry)
    workshop = Workshop(state_dir(registry_settings(repo)))
    changes = await workshop.changes([lib, idle])
    assert [(f.path, f.status, f.added, f.removed, f.in_scope) for f in changes[lib].files] == [
        ("lib.py", "modified", 1, 1, True)
    ]
    assert changes[idle].changed_nothing and changes[idle].files == []
    overview = await workshop.overview([lib, api, clash, idle])
    assert overview is not None
    assert overview.shared_files == {"lib.py": [lib, clash]}
    assert [(c.task_ids, c.paths) for c in overview.conflicts] == [((lib, clash), ["lib.py"])]
    assert overview.clean_pairs == 5
    assert [(s.task_id, s.applies, s.conflicts) for s in overview.preview] == [
        (lib, True, []), (api, True, []), (clash, False, ["lib.py"]), (idle, True, []),
    ]  # fmt: skip


async def test_apply_lands_the_first_two_skips_the_clash_keeps_the_users_edits_and_undo_restores_all(
    registry: TaskRegistry, repo: Path
) -> None:
    _, [lib, api, clash, idle] = await three_tasks(registry)
    workshop = Workshop(state_dir(registry_settings(repo)))
    before_files, before_state = tree_files(repo), state(repo)

    dry = await workshop.apply([lib, api, clash, idle], dry_run=True, caller=ME)
    assert (dry.applied, [(s.task_id, s.paths) for s in dry.skipped]) == (
        [lib, api],
        [(clash, ["lib.py"]), (idle, [])],
    )
    assert dry.apply_id is None and tree_files(repo) == before_files

    done = await workshop.apply([lib, api, clash, idle], dry_run=False, caller=ME)
    assert done.applied == [lib, api] and [s.task_id for s in done.skipped] == [clash, idle]
    assert done.skipped[0].paths == ["lib.py"] and done.apply_id is not None
    after = tree_files(repo)
    assert after["lib.py"] == "X = 2\n" and after["api.py"] == "API = 1\n"
    assert after["app.py"] == before_files["app.py"]  # the user's uncommitted edit is still there
    head, branches, staged, _ = state(repo)
    assert (head, branches, staged) == before_state[:3]  # HEAD, branches and index untouched
    with pytest.raises(InvalidInput, match="applied already"):
        await workshop.apply([lib], dry_run=True, caller=ME)

    undone = await workshop.undo(done.apply_id, caller=ME)
    assert undone.undone and tree_files(repo) == before_files and state(repo) == before_state


async def test_another_principals_apply_id_answers_as_one_that_never_existed_and_changes_nothing(
    registry: TaskRegistry, repo: Path
) -> None:
    _, [lib, *_] = await three_tasks(registry)
    workshop = Workshop(state_dir(registry_settings(repo)))
    done = await workshop.apply([lib], dry_run=False, caller=ME)
    assert done.apply_id is not None

    async def refusal(apply_id: str, caller: Caller) -> str:
        with pytest.raises(InvalidInput) as refused:
            await workshop.undo(apply_id, caller=caller)
        return str(refused.value).replace(apply_id, "<id>")

    assert await refusal(done.apply_id, BOB) == await refusal("a-neverexisted", BOB)
    assert (repo / "lib.py").read_text() == "X = 2\n"
    assert (await workshop.undo(done.apply_id, caller=Caller("root", operator=True))).undone


async def test_undo_after_the_user_changed_an_applied_file_refuses_and_returns_the_reverse_patch(
    registry: TaskRegistry, repo: Path
) -> None:
    _, [lib, api, _, _] = await three_tasks(registry)
    workshop = Workshop(state_dir(registry_settings(repo)))
    done = await workshop.apply([lib, api], dry_run=False, caller=ME)
    assert done.apply_id is not None
    (repo / "api.py").write_text("API = 'mine'\n")
    undone = await workshop.undo(done.apply_id, caller=ME)
    assert not undone.undone and undone.changed_since == ["api.py"]
    assert undone.reverse_patch is not None and "-API = 1" in undone.reverse_patch
    assert (repo / "lib.py").read_text() == "X = 2\n"
    with pytest.raises(InvalidInput, match="not an apply"):
        await workshop.undo("a-unknown", caller=ME)


async def test_discard_leaves_no_worktree_lock_temporary_index_or_ref(
    registry: TaskRegistry, repo: Path
) -> None:
    _, ids = await three_tasks(registry)
    workshop = Workshop(state_dir(registry_settings(repo)))
    assert sorted(await workshop.discard(ids)) == sorted(ids)
    assert run_git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert run_git(repo, "for-each-ref", "refs/fanout/") == ""
    assert leftovers(repo) == []
    with pytest.raises(InvalidInput, match="discarded already"):
        await workshop.apply([ids[0]], dry_run=True, caller=ME)


def leftovers(repo: Path) -> list[str]:
    """Worktree registrations, worktree files and temporary indexes left anywhere."""
    registered = repo / ".git" / "worktrees"
    left = [str(p) for p in registered.iterdir()] if registered.exists() else []
    left += [str(p) for p in (state_dir(registry_settings(repo)) / "changes" / "worktrees").rglob("*.py")]
    return left + [p.name for p in (repo / ".git").iterdir() if "index" in p.name and p.name != "index"]


def registry_settings(repo: Path) -> Settings:
    """The settings the registry fixture opened with."""
    return Settings(roots=(repo,))
