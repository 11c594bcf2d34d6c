"""Worktrees of one repository made at once: every one is made (git's own add fails on another add's
half-written files when two run together, so the server's adds take turns)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from server.changes.worktrees import open_worktree
from tests.server.changes.fake_editors import make_repo, run_git

pytestmark = pytest.mark.anyio


async def test_twenty_four_worktrees_of_one_repository_made_at_once_are_all_made(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"a.py": "A = 1\n"})
    base = run_git(repo, "rev-parse", "HEAD").strip()
    paths = [tmp_path / "worktrees" / f"t{i}" for i in range(24)]
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for i, path in enumerate(paths):
                tg.start_soon(open_worktree, repo, path, base, f"refs/fanout/g/t{i}", "test")
    listed = run_git(repo, "worktree", "list", "--porcelain")
    assert all(f"worktree {path}" in listed for path in paths)
    assert all((path / "a.py").read_text() == "A = 1\n" for path in paths)
