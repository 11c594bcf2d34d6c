"""A task's verify commands run in its worktree once its change set is committed: their exit codes and
the ends of their outputs come back with its changes, within the task's time, and a cancel ends them.
Only configured commands run: any other name is refused at the call."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from server import InvalidInput, SpawnRequest, TaskRequest, TaskState
from tests.server.changes.checks_kit import OpenRegistry, one_edit, script, workshop_of
from tests.server.changes.fake_editors import edits
from tests.server.fakes import ME

pytestmark = pytest.mark.anyio


async def test_verify_results_pass_and_fail_come_back_with_the_changes(
    open_with: OpenRegistry, repo: Path
) -> None:
    task = TaskRequest(task=edits({"lib.py": "X = 2\n"}), verify=["passes", "fails"])
    async with open_with() as registry:
        _, task_id = await one_edit(registry, task)
        assert registry.snapshots([task_id])[0].state is TaskState.COMPLETED
    changes = (await workshop_of(repo).changes([task_id]))[task_id]
    assert [(c.name, c.exit_code) for c in changes.verify] == [("passes", 0), ("fails", 1)]
    assert changes.verify[0].output == "2 passed True\n"  # it ran in the worktree, which has lib.py
    assert "1 failed: test_lib" in changes.verify[1].output and "trace" in changes.verify[1].output
    assert [f.path for f in changes.files] == ["lib.py"] and changes.status == "ended"


async def test_an_unknown_verify_name_is_refused_at_the_call_with_the_configured_names(
    open_with: OpenRegistry, repo: Path
) -> None:
    task = TaskRequest(task=edits({"lib.py": "X = 2\n"}), verify=["pytest"], label="lib")
    async with open_with() as registry:
        with pytest.raises(InvalidInput) as refused:
            await registry.spawn(SpawnRequest(tasks=[task], edit=True), caller=ME)
        with pytest.raises(InvalidInput, match="gives verify but does not edit"):
            await registry.spawn(
                SpawnRequest(tasks=[task.model_copy(update={"verify": ["passes"]})]), caller=ME
            )
    assert "task 1 ('lib'): verify 'pytest' is not a configured command" in str(refused.value)
    assert "(configured: broken, editor, fails, generate, passes)" in str(refused.value)
    assert await workshop_of(repo).ledger.edits() == []


async def test_a_verify_cut_off_by_the_tasks_time_has_no_exit_code_and_the_task_keeps_its_answer(
    open_with: OpenRegistry, repo: Path
) -> None:
    hangs = script("import time; print('collecting', flush=True); time.sleep(3600)")
    task = TaskRequest(task=edits({"lib.py": "X = 2\n"}), verify=["hangs", "passes"], timeout_s=8)
    async with open_with({"hangs": hangs.model_copy(update={"grace_s": 0.5})}) as registry:
        _, task_id = await one_edit(registry, task)
        snap = registry.snapshots([task_id])[0]
    assert snap.state is TaskState.COMPLETED and snap.output == "edited 1 files"
    verify = (await workshop_of(repo).changes([task_id]))[task_id].verify
    assert [(c.name, c.exit_code) for c in verify] == [("hangs", None), ("passes", None)]
    assert verify[0].output == "collecting\n"


async def test_cancelling_a_task_while_its_verify_runs_ends_the_command(
    open_with: OpenRegistry, repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    hangs = script(f"import os, time; open({str(gate)!r}, 'w').write(str(os.getpid())); time.sleep(3600)")
    task = TaskRequest(task=edits({"lib.py": "X = 2\n"}), verify=["hangs"])
    async with open_with({"hangs": hangs}) as registry:
        receipt = await registry.spawn(SpawnRequest(tasks=[task], edit=True), caller=ME)
        task_id = receipt.tasks[0].task_id
        with anyio.fail_after(30):
            pid = int(await anyio.to_thread.run_sync(gate.read_text, abandon_on_cancel=True))
            registry.cancel([task_id], caller=ME)
            await registry.wait([task_id])
        assert registry.snapshots([task_id])[0].state is TaskState.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    record = await workshop_of(repo).ledger.edit(task_id)
    assert record is not None and record.status == "ended" and record.head is not None
