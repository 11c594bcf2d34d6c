"""A spawn of edit tasks whose worktrees would pass the disk limit, or leave too little free disk, is
refused at the call with the numbers and nothing made; a group's worktrees are measured on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import InvalidInput, SpawnRequest, TaskRequest
from server.changes.disk import DiskMeter, disk_use
from tests.server.changes.checks_kit import OpenRegistry, one_edit, workshop_of
from tests.server.changes.fake_editors import edits, run_git
from tests.server.fakes import ME

pytestmark = pytest.mark.anyio


def three() -> SpawnRequest:
    return SpawnRequest(tasks=[TaskRequest(task=edits({f"m{i}.py": "M = 1\n"})) for i in range(3)], edit=True)


SNAPSHOT = ("app.py", "lib.py", ".gitignore", "staged.py", "notes.txt")


def nothing_made(repo: Path) -> bool:
    worktrees = run_git(repo, "worktree", "list", "--porcelain").count("worktree ")
    return worktrees == 1 and run_git(repo, "for-each-ref", "refs/fanout/") == ""


async def test_a_spawn_that_would_pass_the_disk_limit_is_refused_with_the_numbers_and_makes_nothing(
    open_with: OpenRegistry, repo: Path
) -> None:
    async with open_with(worktree_disk_limit=100) as registry:
        with pytest.raises(InvalidInput) as refused:
            await registry.spawn(three(), caller=ME)
        said = str(refused.value)
    # Each worktree would hold what the snapshot tracks: the user's files, the ignored one aside.
    tracked = sum(len((repo / name).read_bytes()) for name in SNAPSHOT)
    assert tracked < 100 < 3 * tracked
    for number in (
        f"needed about {3 * tracked} bytes for 3 worktree(s)",
        "used 0 bytes",
        "limit 100 bytes",
        "free ",
    ):
        assert number in said, said
    assert "--worktree-disk-limit" in said
    assert nothing_made(repo) and await workshop_of(repo).ledger.edits() == []


async def test_a_spawn_that_would_leave_too_little_free_disk_is_refused_with_the_numbers(
    open_with: OpenRegistry, repo: Path
) -> None:
    async with open_with(worktree_min_free=1024**5) as registry:
        with pytest.raises(
            InvalidInput,
            match=r"too little free disk: needed about \d+ bytes .*, free .*, to keep free 1024.0 TiB",
        ):
            await registry.spawn(three(), caller=ME)
    assert nothing_made(repo)


async def test_the_existing_worktrees_count_against_the_limit(open_with: OpenRegistry, repo: Path) -> None:
    async with open_with() as registry:
        group, _ = await one_edit(registry, TaskRequest(task=edits({"lib.py": "X = 2\n"})))
    used = disk_use(workshop_of(repo).ledger.worktrees)
    assert used > 0
    async with open_with(worktree_disk_limit=used + 1) as registry:
        with pytest.raises(InvalidInput, match=f"used .*{used:,} bytes"):
            await registry.spawn(three(), caller=ME)
    [group_dir] = workshop_of(repo).ledger.worktrees.glob(f"*/{group}")
    meter = DiskMeter(workshop_of(repo).ledger.worktrees)
    assert await meter.groups([group, "g-other"]) == {group: disk_use(group_dir)}
