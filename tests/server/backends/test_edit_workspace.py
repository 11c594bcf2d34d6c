"""An edit task's API tools write, edit and delete inside its worktree and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.backends.edit_workspace import EditWorkspace


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir()
    (path / "a.py").write_text("x = 1\ny = 1\n")
    (path / ".git").write_text("gitdir: /somewhere\n")
    return path


def test_write_creates_a_file_and_its_directories_and_edit_replaces_exactly_one_match(worktree: Path) -> None:
    space = EditWorkspace(worktree)
    assert not space.call("write_file", {"path": "pkg/new.py", "content": "N = 1\n"}).is_error
    assert (worktree / "pkg" / "new.py").read_text() == "N = 1\n"
    assert not space.call("edit_file", {"path": "a.py", "old_text": "x = 1", "new_text": "x = 2"}).is_error
    assert (worktree / "a.py").read_text() == "x = 2\ny = 1\n"


def test_an_edit_whose_text_matches_twice_or_never_changes_nothing_and_says_so(worktree: Path) -> None:
    space = EditWorkspace(worktree)
    twice = space.call("edit_file", {"path": "a.py", "old_text": " = 1", "new_text": " = 3"})
    never = space.call("edit_file", {"path": "a.py", "old_text": "z", "new_text": "w"})
    assert twice.is_error and "occurs 2 times" in twice.text
    assert never.is_error and "does not occur" in never.text
    assert (worktree / "a.py").read_text() == "x = 1\ny = 1\n"


def test_delete_removes_a_file(worktree: Path) -> None:
    assert not EditWorkspace(worktree).call("delete_file", {"path": "a.py"}).is_error
    assert not (worktree / "a.py").exists()


@pytest.mark.parametrize(
    "path", ["../escape.py", "/tmp/escape.py", ".git", ".git/hooks/pre-commit", "link/x.py"]
)
def test_paths_outside_the_worktree_or_in_git_are_refused_and_nothing_is_written(
    worktree: Path, tmp_path: Path, path: str
) -> None:
    os.symlink(tmp_path, worktree / "link")  # a symlink that leads out: resolved before the check
    answer = EditWorkspace(worktree).call("write_file", {"path": path, "content": "bad"})
    assert answer.is_error
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "x.py").exists()
    assert (worktree / ".git").read_text() == "gitdir: /somewhere\n"


def test_the_read_tools_are_still_there_and_read_the_worktree(worktree: Path) -> None:
    space = EditWorkspace(worktree)
    assert {tool["name"] for tool in space.tools} >= {"read_file", "write_file", "edit_file", "delete_file"}
    assert "1: x = 1" in space.call("read_file", {"path": "a.py"}).text
