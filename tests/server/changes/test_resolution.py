"""The start of a resolving task: the conflicting change sets merged in git's object store with conflict
markers, on the tasks' base; and the tasks it refuses to merge."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from server import InvalidInput, Settings, SpawnRequest, TaskRequest
from server.changes.editing import state_dir
from server.changes.resolution import merge_with_markers
from server.changes.workshop import Workshop
from server.core.registry import TaskRegistry
from tests.server.changes.fake_editors import edits, run_git
from tests.server.fakes import ME

pytestmark = pytest.mark.anyio


async def spawn(registry: TaskRegistry, *changes: dict[str, str | None]) -> list[str]:
    tasks = [TaskRequest(task=edits(files), label=f"t{n}") for n, files in enumerate(changes)]
    receipt = await registry.spawn(SpawnRequest(tasks=tasks, edit=True), caller=ME)
    ids = [t.task_id for t in receipt.tasks]
    with anyio.fail_after(30):
        await registry.wait(ids)
    return ids


async def test_the_merge_holds_every_sets_work_and_markers_where_they_conflict(
    registry: TaskRegistry, repo: Path
) -> None:
    ids = await spawn(
        registry, {"lib.py": "X = 2\n"}, {"api.py": "A\n"}, {"lib.py": "X = 3\n", "c.py": "C\n"}
    )
    records = await Workshop(state_dir(Settings(roots=(repo,)))).ready(ids)
    start, conflicts = await merge_with_markers(records)
    assert conflicts == ["lib.py"]
    merged = run_git(repo, "show", f"{start}:lib.py")
    assert merged.startswith("<<<<<<< ") and "X = 2\n=======\nX = 3\n>>>>>>> " in merged
    assert (
        run_git(repo, "show", f"{start}:api.py") == "A\n" and run_git(repo, "show", f"{start}:c.py") == "C\n"
    )
    # The user's uncommitted edit, in the tasks' base, is in the merge too; every task's head is an ancestor.
    assert "# the user's edit" in run_git(repo, "show", f"{start}:app.py")
    for record in records:
        run_git(repo, "merge-base", "--is-ancestor", record.head or "", start)


async def test_sets_that_merge_cleanly_or_come_from_different_snapshots_are_refused(
    registry: TaskRegistry, repo: Path
) -> None:
    workshop = Workshop(state_dir(Settings(roots=(repo,))))
    first, second = await spawn(registry, {"lib.py": "X = 2\n"}, {"api.py": "A\n"})
    with pytest.raises(InvalidInput, match="do not conflict"):
        await merge_with_markers(await workshop.ready([first, second]))
    (repo / "more.txt").write_text("the user went on working\n")
    [later] = await spawn(registry, {"lib.py": "X = 3\n"})
    with pytest.raises(InvalidInput, match="different snapshots"):
        await merge_with_markers(await workshop.ready([first, later]))
    with pytest.raises(InvalidInput, match="two or more"):
        await merge_with_markers(await workshop.ready([first]))
