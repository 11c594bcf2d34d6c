"""What the tests of edit tasks share: a fake editor on PATH, a user's repository with uncommitted work,
and a registry whose backends are that editor (as a configured command) and one that cannot edit."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from server import Settings
from server.backends.cli import CommandBackend
from server.backends.roster import Roster
from server.config.commands import CommandSpec
from server.core.registry import TaskRegistry, open_registry
from tests.server.backends.fake_clis import install
from tests.server.changes.checks_kit import CHECKS, OpenRegistry
from tests.server.changes.fake_editors import EDITOR, make_repo, run_git
from tests.server.fakes import ScriptedBackend


@pytest.fixture
def editor_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install(bin_dir, "editor", EDITOR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The user's repository: two committed files, one of them changed and not staged, one file staged and
    one untracked; and an ignored one."""
    path = make_repo(
        tmp_path / "project",
        {"app.py": "def main():\n    return 1\n", "lib.py": "X = 1\n", ".gitignore": "*.log\n"},
    )
    (path / "app.py").write_text("def main():\n    return 2  # the user's edit\n")
    (path / "staged.py").write_text("S = 1\n")
    run_git(path, "add", "staged.py")
    (path / "notes.txt").write_text("untracked\n")
    (path / "debug.log").write_text("ignored\n")
    return path


@pytest.fixture
async def registry(repo: Path, editor_on_path: Path) -> AsyncIterator[TaskRegistry]:
    settings = Settings(roots=(repo,))
    editor = CommandBackend("editor", CommandSpec(argv=("editor",)), settings.roots)
    roster = Roster({"editor": editor, "scripted": ScriptedBackend()}, default="editor")
    async with open_registry(settings, roster) as opened:
        yield opened


@pytest.fixture
def open_with(repo: Path, editor_on_path: Path) -> OpenRegistry:
    """Opens a registry whose backend is the fake editor and whose commands include ``CHECKS`` (and
    ``more``), with the settings given on top of the defaults."""

    @asynccontextmanager
    async def opened(
        more: dict[str, CommandSpec] | None = None, **settings: Any
    ) -> AsyncGenerator[TaskRegistry]:
        commands = {"editor": CommandSpec(argv=("editor",)), **CHECKS, **(more or {})}
        made = Settings(roots=(repo,), commands=commands, **settings)
        editor = CommandBackend("editor", commands["editor"], made.roots)
        async with open_registry(made, Roster({"editor": editor}, default="editor")) as registry:
            yield registry

    return opened
