"""A spawn warns of edit tasks whose scopes can match the same path, naming both and suggesting
depends_on; disjoint scopes, tasks already in order and tasks without a scope get no warning."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from server import SpawnRequest, TaskRequest
from server.core.registry import TaskRegistry
from tests.server.fakes import ME

pytestmark = pytest.mark.anyio


async def overlaps(registry: TaskRegistry, *scopes: list[str], depends: bool = False) -> list[str]:
    """The overlap warnings of a spawn of one edit task per scope (labelled a, b, c...), once they ended."""
    tasks = [
        TaskRequest(task="look only", label="abc"[n], scope=scope, depends_on=["a"] if depends and n else [])
        for n, scope in enumerate(scopes)
    ]
    receipt = await registry.spawn(SpawnRequest(tasks=tasks, edit=True), caller=ME)
    with anyio.fail_after(30):
        await registry.wait([t.task_id for t in receipt.tasks])
    return [w for w in receipt.warnings if "may change the same files" in w]


@pytest.mark.parametrize(
    ("ours", "theirs", "why"),
    [
        (["lib.py"], ["lib.py"], "both have 'lib.py'"),
        (["src/"], ["src/auth/*.py"], "'src/auth/*.py' is under 'src'"),
        (["src/**"], ["src/new/module.py"], "'src/new/module.py' is under 'src/**'"),
        (["*.py"], ["l*"], "both scopes match 'lib.py'"),
    ],
)
async def test_overlapping_scopes_get_a_warning_naming_both_tasks_and_suggesting_depends_on(
    registry: TaskRegistry, ours: list[str], theirs: list[str], why: str
) -> None:
    [warning] = await overlaps(registry, ours, theirs)
    assert warning.startswith(f"edit tasks 'a' and 'b' may change the same files ({why})")
    assert "give 'b' depends_on ['a'] to run them in order" in warning


async def test_disjoint_scopes_ordered_tasks_and_unscoped_tasks_get_no_warning(
    registry: TaskRegistry,
) -> None:
    # "a*.txt" and "*.py" could both match only a path that is in neither's reach: none in the tree.
    assert await overlaps(registry, ["lib.py"], ["api.py"], ["docs/**", "a*.txt"]) == []
    assert await overlaps(registry, ["*.txt"], ["n*"], depends=True) == []  # b waits for a
    assert await overlaps(registry, ["lib.py"], []) == []


async def test_each_overlapping_pair_is_named_once(registry: TaskRegistry) -> None:
    warnings = await overlaps(registry, ["lib.py"], ["api.py"], ["*.py"])
    assert [w.split(" may")[0] for w in warnings] == ["edit tasks 'a' and 'c'", "edit tasks 'b' and 'c'"]


async def test_a_path_both_match_deep_in_a_big_tree_is_found_in_the_snapshot(
    repo: Path, registry: TaskRegistry
) -> None:
    # Only the tree can tell: neither glob is in the other; the user's untracked files are in the snapshot.
    for n in range(3_000):
        (repo / "pkg" / f"d{n % 30}").mkdir(parents=True, exist_ok=True)
        (repo / "pkg" / f"d{n % 30}" / f"m{n}.py").write_text("")
    (repo / "pkg" / "zz").mkdir()
    (repo / "pkg" / "zz" / "shared.cfg").write_text("x\n")
    [warning] = await overlaps(registry, ["pkg/*/*.cfg"], ["*shared*"])
    assert "(both scopes match 'pkg/zz/shared.cfg')" in warning
