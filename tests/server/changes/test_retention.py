"""Edit tasks past retention leave nothing behind: their worktrees are removed with git (their work is
in their refs), the refs deleted and the records forgotten, by the sweep a runtime runs as it starts and every minute;
a task that ended later is kept whole."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from server import Settings, TaskRequest
from server.app.runtime import open_runtime
from server.changes.retention import expire
from tests.server.changes.checks_kit import OpenRegistry, one_edit, workshop_of
from tests.server.changes.fake_editors import edits, run_git
from tests.server.fakes import ME, ScriptedBackend

pytestmark = pytest.mark.anyio


def worktree_count(repo: Path) -> int:
    return run_git(repo, "worktree", "list", "--porcelain").count("worktree ")


async def test_retention_removes_a_finished_tasks_worktree_and_ref_and_keeps_one_that_ended_later(
    open_with: OpenRegistry, repo: Path
) -> None:
    async with open_with() as registry:
        group, old = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
        _, new = await one_edit(registry, TaskRequest(task=edits({"api.py": "A = 1\n"})))
    ledger = workshop_of(repo).ledger
    old_record, new_record = await ledger.edit(old), await ledger.edit(new)
    assert old_record is not None and new_record is not None and new_record.ended_at is not None
    assert worktree_count(repo) == 3

    assert await expire(ledger, ended_before=new_record.ended_at) == [old]

    assert not await anyio.Path(old_record.worktree).exists() and worktree_count(repo) == 2
    assert run_git(repo, "for-each-ref", "--format=%(refname)", f"refs/fanout/{group}/") == ""
    assert await ledger.edit(old) is None
    assert await anyio.Path(new_record.worktree).is_dir() and await ledger.edit(new) == new_record
    assert run_git(repo, "show", f"{new_record.ref}:api.py") == "A = 1\n"


async def test_an_applied_tasks_ref_is_kept_until_retention(open_with: OpenRegistry, repo: Path) -> None:
    async with open_with() as registry:
        _, task_id = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
    workshop = workshop_of(repo)
    assert (await workshop.apply([task_id], dry_run=False, caller=ME)).applied == [task_id]
    record = await workshop.ledger.edit(task_id)
    assert record is not None and run_git(repo, "for-each-ref", record.ref) != ""
    assert record.ended_at is not None

    assert await expire(workshop.ledger, ended_before=record.ended_at + 1) == [task_id]
    assert run_git(repo, "for-each-ref", record.ref) == "" and worktree_count(repo) == 1
    assert (repo / "lib.py").read_text() == "X = 2\n"  # the applied work stays in the user's tree


async def test_a_runtime_sweeps_what_is_past_its_retention_as_it_starts(
    open_with: OpenRegistry, repo: Path
) -> None:
    async with open_with() as registry:
        _, task_id = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
    ledger = workshop_of(repo).ledger
    record = await ledger.edit(task_id)
    assert record is not None
    settings = Settings(roots=(repo,), retention_s=1e-6)
    async with open_runtime(settings, ScriptedBackend()):
        assert await ledger.edit(task_id) is None
    assert not await anyio.Path(record.worktree).exists() and worktree_count(repo) == 1


async def test_a_server_without_git_still_opens_over_what_edit_tasks_left_and_says_why_it_did_not_tidy(
    open_with: OpenRegistry,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_with() as registry:
        await one_edit(registry, TaskRequest(task="Add " + edits({"new.py": "N = 1\n"})))
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    settings = Settings(roots=(repo,), retention_s=0.001)
    with anyio.fail_after(30):
        async with open_runtime(settings, backend=ScriptedBackend()) as runtime:
            assert runtime.registry.statistics().running == 0
    assert "what edit tasks left was not tidied" in caplog.text and "no `git`" in caplog.text
