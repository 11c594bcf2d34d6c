"""The durable store under the real registry: records that outlive their process, and several processes
(here, several stores on one file in one event loop: a store is a process to the file) sharing them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from server import (
    Caller,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskRegistry,
    TaskRequest,
    TaskSink,
    TaskState,
    UnknownTask,
    open_registry,
)
from server.backends.roster import Roster
from server.core.durable.opening import open_store
from server.core.durable.store import DurableStore
from server.fanin.synthesis import SynthesisDone, Synthesizer
from tests.answers import synthesis
from tests.server.fakes import ScriptedBackend, gated

MakeSettings = Callable[..., Settings]
ME = Caller.local()


def spawn_of(n: int, **kwargs: Any) -> SpawnRequest:
    return SpawnRequest(tasks=[TaskRequest(task=f"part {i}", label=f"p{i}") for i in range(n)], **kwargs)


@asynccontextmanager
async def server(settings: Settings, backend: ScriptedBackend) -> AsyncGenerator[TaskRegistry]:
    """A registry on the settings' store, as the runtime opens them."""
    async with open_store(settings) as store, open_registry(settings, backend, store=store) as registry:
        yield registry


@pytest.fixture
def on_file(make_settings: MakeSettings, tmp_path: Path) -> Callable[..., Settings]:
    return lambda **more: make_settings(store=str(tmp_path / "tasks.db"), **more)  # type: ignore[no-any-return]


async def test_a_finished_task_is_read_back_by_the_next_process(on_file: Callable[..., Settings]) -> None:
    settings = on_file()
    async with server(settings, ScriptedBackend()) as first:
        receipt = await first.spawn(spawn_of(3), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await first.wait(ids)
        before = first.snapshots(ids)
        summary = first.group_summary(receipt.group_id)
    async with server(settings, ScriptedBackend()) as second:
        with pytest.raises(UnknownTask):
            second.snapshot(ids[0], caller=ME)  # not read until asked for: a select reads it
        assert await second.select(None, receipt.group_id, caller=ME) == ids
        after = second.snapshots(ids)
        assert [s.model_dump(exclude={"elapsed_s"}) for s in after] == [
            s.model_dump(exclude={"elapsed_s"}) for s in before
        ]
        assert [s.elapsed_s for s in after] == pytest.approx([s.elapsed_s for s in before], abs=1e-3)
        assert second.group_summary(receipt.group_id) == summary
        listing = await second.list(caller=ME)
        assert (listing.total, listing.counts.completed) == (3, 3)


async def test_one_process_sees_another_s_task_run_and_end(on_file: Callable[..., Settings]) -> None:
    release = anyio.Event()
    async with server(on_file(), ScriptedBackend(gated(release, "streamed"))) as owner:
        receipt = await owner.spawn(spawn_of(1), caller=ME)
        task_id = receipt.tasks[0].task_id
        async with server(on_file(), ScriptedBackend()) as reader:
            with anyio.fail_after(10):
                while True:  # the owner writes its progress every tick
                    await reader.select([task_id], None, caller=ME)
                    snap = reader.snapshot(task_id, caller=ME)
                    if snap.state is TaskState.RUNNING and snap.output == "s":
                        break
                    await anyio.sleep(0.05)
            release.set()
            with anyio.fail_after(10):
                await reader.wait([task_id])  # the end is raised here by the reader's store
            await reader.refresh([task_id])
            snap = reader.snapshot(task_id, caller=ME)
            assert (snap.state, snap.output, snap.partial) == (TaskState.COMPLETED, "streamed", False)


async def test_a_cancel_from_another_process_is_carried_out_by_the_owner(
    on_file: Callable[..., Settings],
) -> None:
    never = anyio.Event()
    backend = ScriptedBackend(gated(never))
    async with server(on_file(), backend) as owner:
        receipt = await owner.spawn(spawn_of(2), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await backend.wait_calls(2)
        async with server(on_file(), ScriptedBackend()) as other:
            await other.select(None, receipt.group_id, caller=ME)
            outcome = other.cancel(ids[:1], "stop it", caller=ME)
            assert outcome.cancelled == ids[:1]
            with anyio.fail_after(10):
                await owner.wait(ids[:1])
                await other.wait(ids[:1])
            snap = owner.snapshot(ids[0], caller=ME)
            assert (snap.state, snap.note) == (TaskState.CANCELLED, "stop it")
            assert owner.snapshot(ids[1], caller=ME).state is TaskState.RUNNING
            assert backend.cancelled == 1


async def test_listing_counts_every_process_s_tasks(on_file: Callable[..., Settings]) -> None:
    async with server(on_file(), ScriptedBackend()) as one, server(on_file(), ScriptedBackend()) as two:
        first = await one.spawn(spawn_of(2), caller=ME)
        second = await two.spawn(spawn_of(3), caller=ME)
        with anyio.fail_after(5):
            await one.wait([t.task_id for t in first.tasks])
            await two.wait([t.task_id for t in second.tasks])
        for registry in (one, two):
            with anyio.fail_after(5):  # the other's ends reach the file within a tick
                while True:
                    if (await registry.list(caller=ME)).counts.completed == 5:
                        break
                    await anyio.sleep(0.05)
            assert (await registry.list(caller=ME)).total == 5
            shown = await registry.list(second.group_id, limit=2, caller=ME)
            assert [s.task_id for s in shown.tasks] == [t.task_id for t in second.tasks[1:]]


async def test_tasks_past_retention_are_deleted_from_the_file(on_file: Callable[..., Settings]) -> None:
    settings = on_file(max_finished=2)
    async with server(settings, ScriptedBackend()) as first:
        for _ in range(2):
            receipt = await first.spawn(spawn_of(2), caller=ME)
            with anyio.fail_after(5):
                await first.wait([t.task_id for t in receipt.tasks])
    async with open_store(settings) as store:
        assert isinstance(store, DurableStore)
        assert (await store.facts())["tasks"] == 2  # the newest two: pruned when the store opened


async def test_the_store_survives_many_tasks_of_two_processes_at_once(
    on_file: Callable[..., Settings],
) -> None:
    settings = on_file(max_tasks_per_spawn=1000)
    async with server(settings, ScriptedBackend()) as one, server(settings, ScriptedBackend()) as two:
        spawned = [await one.spawn(spawn_of(1000), caller=ME), await two.spawn(spawn_of(1000), caller=ME)]
        with anyio.fail_after(60):
            await one.wait([t.task_id for t in spawned[0].tasks])
            await two.wait([t.task_id for t in spawned[1].tasks])
    async with server(settings, ScriptedBackend()) as third:
        listing = await third.list(limit=0, caller=ME)
    assert (listing.total, listing.counts.completed) == (2000, 2000)
    with sqlite3.connect(settings.store or "") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_running_task_s_partial_output_reaches_the_file_while_it_runs(
    on_file: Callable[..., Settings],
) -> None:
    chunks = anyio.Event()
    never = anyio.Event()

    async def streaming(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.response_started()
        sink.append("first part, ")
        chunks.set()
        await never.wait()
        raise AssertionError("never released")

    settings = on_file()
    async with server(settings, ScriptedBackend(streaming)) as registry:
        receipt = await registry.spawn(spawn_of(1), caller=ME)
        with anyio.fail_after(5):
            await chunks.wait()
        with anyio.fail_after(5):
            while True:
                with sqlite3.connect(settings.store or "") as conn:
                    row = conn.execute("SELECT state, partial FROM tasks").fetchone()
                if row == ("running", "first part, "):
                    break
                await anyio.sleep(0.05)
        registry.cancel([receipt.tasks[0].task_id], caller=ME)


async def test_a_model_synthesis_is_picked_up_by_the_next_process_not_paid_again(
    on_file: Callable[..., Settings],
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if request.output_schema:
            return SubagentResult(json.dumps(synthesis("Merged once.")), request.model, "end_turn")
        return SubagentResult("an answer", request.model, "end_turn")

    settings = on_file()
    first_backend = ScriptedBackend(handler)
    async with server(settings, first_backend) as first:
        ids = [t.task_id for t in (await first.spawn(spawn_of(2), caller=ME)).tasks]
        with anyio.fail_after(5):
            done = await Synthesizer(first, settings, Roster.single(first_backend)).synthesize(
                ids, "llm", caller=ME
            )
    assert isinstance(done, SynthesisDone) and len(first_backend.calls) == 3
    second_backend = ScriptedBackend(handler)
    async with server(settings, second_backend) as second:
        await second.select(ids, None, caller=ME)
        with anyio.fail_after(5):
            again = await Synthesizer(second, settings, Roster.single(second_backend)).synthesize(
                ids, "llm", caller=ME
            )
    assert isinstance(again, SynthesisDone) and again.task_id == done.task_id
    assert again.synthesis.summary == "Merged once." and second_backend.calls == []


async def test_writes_the_file_refuses_are_kept_and_made_later_while_the_server_goes_on(
    on_file: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("server.core.durable.schema.LOCK_WAIT_S", 0.05)
    settings = on_file()
    async with server(settings, ScriptedBackend()) as registry:
        holder = sqlite3.connect(settings.store or "", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        receipt = await registry.spawn(spawn_of(3), caller=ME)  # its write fails: the spawn goes on
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        assert "failed a write" in caplog.text
        holder.execute("ROLLBACK")
        holder.close()
        with anyio.fail_after(5):
            while True:  # the next tick writes what was kept
                with sqlite3.connect(settings.store or "") as conn:
                    rows = conn.execute("SELECT state FROM tasks").fetchall()
                if rows == [("completed",)] * 3:
                    break
                await anyio.sleep(0.05)
