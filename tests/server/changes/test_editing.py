"""Edit tasks run in worktrees of a snapshot of the user's tree, and end as refs: real git, real
subprocesses (a fake agent CLI that edits files)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from server import InvalidInput, Settings, SpawnRequest, TaskRequest, TaskState
from server.backends.cli import CommandBackend
from server.config.commands import CommandSpec
from server.core.registry import TaskRegistry, open_registry
from tests.fake_api import FakeApi
from tests.server.backends.test_anthropic_api import api_runtime
from tests.server.backends.test_tooluse import tools, use
from tests.server.changes.fake_editors import edits, run_git, state
from tests.server.fakes import ME

pytestmark = pytest.mark.anyio


async def finished(registry: TaskRegistry, request: SpawnRequest) -> tuple[str, list[str]]:
    receipt = await registry.spawn(request, caller=ME)
    ids = [t.task_id for t in receipt.tasks]
    with anyio.fail_after(30):
        await registry.wait(ids)
    return receipt.group_id, ids


SNAPSHOT = "fanout-mcp: snapshot of the work tree"


def worktrees(repo: Path) -> str:
    return run_git(repo, "worktree", "list", "--porcelain")


def locked(repo: Path) -> bool:
    return any(line.startswith("locked") for line in worktrees(repo).splitlines())


async def test_an_edit_task_starts_from_the_users_tree_as_it_is_and_its_work_ends_in_a_ref(
    registry: TaskRegistry, repo: Path
) -> None:
    before = state(repo)
    task = TaskRequest(task="Add a module " + edits({"new.py": "N = 1\n", "lib.py": "X = 2\n"}), edit=True)
    group, [task_id] = await finished(registry, SpawnRequest(tasks=[task]))

    snap = registry.snapshots([task_id])[0]
    assert snap.state is TaskState.COMPLETED and snap.output == "edited 2 files"
    ref = f"refs/fanout/{group}/{task_id}"
    # The change set holds what the agent did, on top of everything the user had, ignored files aside.
    assert run_git(repo, "show", f"{ref}:new.py") == "N = 1\n"
    assert run_git(repo, "show", f"{ref}:app.py").endswith("return 2  # the user's edit\n")
    assert run_git(repo, "show", f"{ref}:notes.txt") == "untracked\n"
    assert run_git(repo, "show", f"{ref}:staged.py") == "S = 1\n"
    assert "debug.log" not in run_git(repo, "ls-tree", "-r", "--name-only", ref)
    assert run_git(repo, "diff", "--name-only", f"{ref}~1", ref).split() == ["lib.py", "new.py"]
    # The user's repository is as it was: HEAD, branches, index, working tree.
    assert state(repo) == before
    assert not (repo / "new.py").exists() and (repo / "lib.py").read_text() == "X = 1\n"
    # The worktree is outside the repository, and no longer locked.
    listed = worktrees(repo)
    path = next(line.split(" ", 1)[1] for line in listed.splitlines()[3:] if line.startswith("worktree "))
    assert not Path(path).is_relative_to(repo) and task_id in path
    assert not locked(repo)


async def test_the_worktree_is_locked_while_the_agent_runs_and_unlocked_after(
    registry: TaskRegistry, repo: Path
) -> None:
    _, [task_id] = await finished(
        registry, SpawnRequest(tasks=[TaskRequest(task="[[worktrees]]", edit=True)])
    )
    seen = registry.snapshots([task_id])[0].output or ""
    assert f"locked fanout-mcp task {task_id}" in seen  # what git said while the agent ran
    assert not locked(repo)


async def test_an_agent_that_commits_itself_loses_nothing(registry: TaskRegistry, repo: Path) -> None:
    task = TaskRequest(task=edits({"a.py": "A\n"}) + " [[commit]] " + edits({"b.py": "B\n"}), edit=True)
    group, [task_id] = await finished(registry, SpawnRequest(tasks=[task]))
    ref = f"refs/fanout/{group}/{task_id}"
    # The change set is the agent's own commit, on the snapshot.
    assert run_git(repo, "log", "--format=%s", "-2", ref).split("\n")[:2] == ["agent", SNAPSHOT]
    changed = run_git(repo, "diff", "--name-only", f"{ref}~1", ref).split()
    assert changed == ["a.py", "b.py"]


async def test_a_command_that_writes_outside_its_worktree_is_not_stopped_but_its_change_set_holds_none_of_it(
    registry: TaskRegistry, repo: Path, tmp_path: Path
) -> None:
    # A configured command runs as the user: the server cannot stop it writing where the user may (only
    # the claude and codex presets and the anthropic tools are confined). What it guarantees: the change
    # set is the worktree's files only, and nothing reaches the user's repository through git.
    elsewhere = tmp_path / "elsewhere.txt"
    before = state(repo)
    writes: dict[str, str | None] = {"lib.py": "X = 2\n", "../escaped.txt": "up\n", str(elsewhere): "abs\n"}
    group, [task_id] = await finished(
        registry, SpawnRequest(tasks=[TaskRequest(task=edits(writes), edit=True)])
    )

    assert elsewhere.read_text() == "abs\n"  # written: nothing in the server prevents it
    ref = f"refs/fanout/{group}/{task_id}"
    assert run_git(repo, "diff", "--name-only", f"{ref}~1", ref).split() == ["lib.py"]
    assert state(repo) == before and not (repo / "escaped.txt").exists()
    assert run_git(repo, "for-each-ref", "--format=%(refname)").split() == [ref, "refs/heads/main"]


async def test_a_task_that_changed_nothing_has_its_base_as_its_change_set(
    registry: TaskRegistry, repo: Path
) -> None:
    group, [task_id] = await finished(
        registry, SpawnRequest(tasks=[TaskRequest(task="look only")], edit=True)
    )
    ref = f"refs/fanout/{group}/{task_id}"
    assert run_git(repo, "rev-parse", f"{ref}^{{tree}}") != "" and run_git(
        repo, "log", "--format=%s", "-1", ref
    )
    assert run_git(repo, "log", "--format=%s", "-1", ref).strip() == SNAPSHOT


@pytest.mark.parametrize(
    ("request_", "said"),
    [
        (SpawnRequest(tasks=[TaskRequest(task="t", backend="scripted")], edit=True), "cannot change files"),
        (
            SpawnRequest(tasks=[TaskRequest(task="t", edit=True, scope=["../other/**"])]),
            "leaves the repository",
        ),
        (SpawnRequest(tasks=[TaskRequest(task="t", edit=True, scope=["/etc/*"])]), "leaves the repository"),
        (SpawnRequest(tasks=[TaskRequest(task="t", scope=["src/**"])]), "does not edit"),
    ],
)
async def test_a_bad_edit_request_is_refused_at_the_call_with_nothing_written(
    registry: TaskRegistry, repo: Path, request_: SpawnRequest, said: str
) -> None:
    refs_before = run_git(repo, "for-each-ref")
    with pytest.raises(InvalidInput, match=said):
        await registry.spawn(request_, caller=ME)
    assert run_git(repo, "for-each-ref") == refs_before and worktrees(repo).count("worktree ") == 1


async def test_a_directory_outside_any_git_work_tree_is_refused(tmp_path: Path, editor_on_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    settings = Settings(roots=(plain,))
    editor = CommandBackend("editor", CommandSpec(argv=("editor",)), settings.roots)
    async with open_registry(settings, editor) as registry:
        with pytest.raises(InvalidInput, match="not in a git work tree"):
            await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="t", edit=True)]), caller=ME)


async def test_a_repository_in_the_middle_of_a_merge_is_refused(registry: TaskRegistry, repo: Path) -> None:
    head = run_git(repo, "rev-parse", "HEAD").strip()
    (repo / ".git" / "MERGE_HEAD").write_text(head + "\n")
    with pytest.raises(InvalidInput, match="middle of a merge"):
        await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="t", edit=True)]), caller=ME)


async def test_an_anthropic_edit_task_writes_through_its_tools_into_its_worktree_only(
    fake_api: FakeApi, repo: Path
) -> None:
    writes = [
        use("write_file", path="new.py", content="N = 1\n"),
        use("edit_file", path="lib.py", old_text="X = 1", new_text="X = 2"),
        use("write_file", path=str(repo / "app.py"), content="overwritten"),
        use("write_file", path=".git/config", content="bad"),
    ]
    task = TaskRequest(task=f"implement {tools(writes)} [[tool_echo]]", edit=True, backend="anthropic")
    async with api_runtime(Settings(roots=(repo,))) as runtime:
        receipt = await runtime.registry.spawn(SpawnRequest(tasks=[task]), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(30):
            await runtime.registry.wait(ids)
        (snap,) = runtime.registry.snapshots(ids)
    assert snap.state is TaskState.COMPLETED, snap.error
    assert [r["is_error"] for r in json.loads(snap.output or "")] == [False, False, True, True]
    ref = f"refs/fanout/{receipt.group_id}/{ids[0]}"
    assert run_git(repo, "diff", "--name-only", f"{ref}~1", ref).split() == ["lib.py", "new.py"]
    assert (repo / "app.py").read_text().endswith("# the user's edit\n")
