"""An edit task's worktree gets the user's ignored local files it lists in .worktreeinclude (copied), the
configured directories (linked) and the configured setup commands' work, and none of it ever reaches its
change set: real git repositories, real subprocesses."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from server import TaskRequest, TaskState
from tests.server.changes.checks_kit import OpenRegistry, committed, one_edit, workshop_of
from tests.server.changes.fake_editors import edits, run_git

pytestmark = pytest.mark.anyio


@pytest.fixture
def local_files(repo: Path) -> Path:
    """The user's ignored local files: a .env listed in .worktreeinclude, a key that is not, and an
    installed node_modules."""
    (repo / ".gitignore").write_text("*.log\n.env\nsecret.key\nnode_modules/\n")
    (repo / ".worktreeinclude").write_text(".env\n")
    (repo / ".env").write_text("TOKEN=local\n")
    (repo / "secret.key").write_text("do not copy\n")
    (repo / "node_modules" / "left-pad").mkdir(parents=True)
    (repo / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    return repo


async def test_a_listed_env_is_copied_and_node_modules_linked_and_neither_is_ever_in_the_change_set(
    open_with: OpenRegistry, local_files: Path
) -> None:
    repo = local_files
    # The agent even un-ignores everything: what the server put there still stays out of the commit.
    task = TaskRequest(task=edits({"lib.py": "X = 2\n", ".gitignore": ""}))
    async with open_with(worktree_links=("node_modules",)) as registry:
        group, task_id = await one_edit(registry, task)
        assert registry.snapshots([task_id])[0].state is TaskState.COMPLETED
        record = await workshop_of(repo).ledger.edit(task_id)
    assert record is not None
    worktree = Path(record.worktree)
    assert (worktree / ".env").read_text() == "TOKEN=local\n"
    assert not (worktree / "secret.key").exists()  # ignored, but not listed in .worktreeinclude
    assert (worktree / "node_modules").is_symlink()
    assert (worktree / "node_modules" / "left-pad" / "index.js").read_text() == "module.exports = 1\n"
    files = committed(repo, f"refs/fanout/{group}/{task_id}")
    assert "lib.py" in files and ".worktreeinclude" in files
    assert ".env" not in files and "secret.key" not in files
    assert not any(path.startswith("node_modules") for path in files)
    changes = (await workshop_of(repo).changes([task_id]))[task_id]
    assert sorted(f.path for f in changes.files) == [".gitignore", "lib.py"]


async def test_removing_the_worktree_leaves_the_linked_directory_and_the_users_files_alone(
    open_with: OpenRegistry, local_files: Path
) -> None:
    async with open_with(worktree_links=("node_modules",)) as registry:
        _, task_id = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
        workshop = workshop_of(local_files)
        record = await workshop.ledger.edit(task_id)
        assert await workshop.discard([task_id]) == [task_id]
    assert record is not None and not await anyio.Path(record.worktree).exists()
    assert (local_files / "node_modules" / "left-pad" / "index.js").exists()
    assert (local_files / ".env").read_text() == "TOKEN=local\n"


async def test_a_symlink_listed_in_worktreeinclude_that_leaves_the_repository_is_not_followed(
    open_with: OpenRegistry, local_files: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not the repository's\n")
    (local_files / ".env").unlink()
    (local_files / ".env").symlink_to(outside)
    async with open_with() as registry:
        _, task_id = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
        record = await workshop_of(local_files).ledger.edit(task_id)
    assert record is not None and not (Path(record.worktree) / ".env").exists()


async def test_what_a_setup_command_makes_is_there_for_the_agent_and_not_in_the_change_set(
    open_with: OpenRegistry, repo: Path
) -> None:
    async with open_with(worktree_setup=("generate",)) as registry:
        group, task_id = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
        assert registry.snapshots([task_id])[0].state is TaskState.COMPLETED
        record = await workshop_of(repo).ledger.edit(task_id)
    assert record is not None
    assert (Path(record.worktree) / "generated.txt").read_text() == "made by setup\n"
    files = committed(repo, f"refs/fanout/{group}/{task_id}")
    assert "lib.py" in files and "generated.txt" not in files
    assert "generated.txt" in record.kept_out


async def test_a_failing_setup_command_fails_the_task_with_its_exit_code_and_output_before_the_agent(
    open_with: OpenRegistry, repo: Path
) -> None:
    async with open_with(worktree_setup=("generate", "broken")) as registry:
        group, task_id = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
        snap = registry.snapshots([task_id])[0]
    assert snap.state is TaskState.FAILED and snap.error is not None
    assert snap.error.kind == "command_failed"
    assert "'broken' failed with exit code 3" in snap.error.message
    assert "npm ERR! missing package" in snap.error.message
    # The agent never ran, and what the first setup command made is not a change.
    assert "generated.txt" not in committed(repo, f"refs/fanout/{group}/{task_id}")
    assert run_git(repo, "show", f"refs/fanout/{group}/{task_id}:lib.py") == "X = 1\n"
