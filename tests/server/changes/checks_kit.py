"""What the tests of worktree environments and verify commands share: configured check commands (small
Python scripts), a registry opened with settings of the test's choosing (the ``open_with`` fixture in
conftest.py), and a look at what a task left."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio

from server import Settings, SpawnRequest, TaskRequest
from server.changes.editing import state_dir
from server.changes.workshop import Workshop
from server.config.commands import CommandSpec
from server.core.registry import TaskRegistry
from tests.server.changes.fake_editors import run_git
from tests.server.fakes import ME

OpenRegistry = Callable[..., AbstractAsyncContextManager[TaskRegistry]]


def script(code: str) -> CommandSpec:
    return CommandSpec(argv=(sys.executable, "-c", code))


CHECKS = {
    "generate": script("open('generated.txt', 'w').write('made by setup\\n'); print('generated')"),
    "broken": script("import sys; print('npm ERR! missing package'); sys.exit(3)"),
    "passes": script("import os; print('2 passed', os.path.exists('lib.py'))"),
    "fails": script("import sys; print('1 failed: test_lib'); print('trace', file=sys.stderr); sys.exit(1)"),
}


async def one_edit(registry: TaskRegistry, task: TaskRequest) -> tuple[str, str]:
    """Spawn ``task`` as an edit task and wait for its end; its group and task ids."""
    receipt = await registry.spawn(SpawnRequest(tasks=[task], edit=True), caller=ME)
    with anyio.fail_after(30):
        await registry.wait([receipt.tasks[0].task_id])
    return receipt.group_id, receipt.tasks[0].task_id


def workshop_of(repo: Path) -> Workshop:
    return Workshop(state_dir(Settings(roots=(repo,))))


def committed(repo: Path, ref: str) -> list[str]:
    return run_git(repo, "ls-tree", "-r", "--name-only", ref).split()
