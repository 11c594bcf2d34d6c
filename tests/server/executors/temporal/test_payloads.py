"""Payloads over Temporal's limits are kept by reference: as private files named by their digest in a
directory every front end and worker shares, read back whole or refused with what to configure, and
swept after the retention; a spawn larger than Temporal's message limit runs on a real dev server."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import StorageDriverClaim, StorageDriverRetrieveContext, StorageDriverStoreContext

from server import Caller, Settings, SpawnRequest, TaskRequest, TaskState
from server.app.runtime import open_runtime
from server.executors.temporal.payloads import DirectoryDriver, PayloadMissing, payload_dir, sweep
from tests.fake_api import FakeApi

ME = Caller.local()
BIG = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"x" * 300_000 + b'"')
STORE, RETRIEVE = StorageDriverStoreContext(), StorageDriverRetrieveContext()


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("??/*"))


async def test_a_payload_is_stored_once_by_its_digest_privately_and_read_back_whole(tmp_path: Path) -> None:
    driver = DirectoryDriver(tmp_path / "payloads")
    claims = await driver.store(STORE, [BIG, BIG])
    assert claims[0] == claims[1]
    [kept] = files_in(tmp_path / "payloads")
    assert kept.name == claims[0].claim_data["sha256"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # prompts and files: the owner's only
    assert stat.S_IMODE((tmp_path / "payloads").stat().st_mode) == 0o700
    assert await driver.retrieve(RETRIEVE, claims) == [BIG, BIG]


async def test_a_payload_not_where_this_process_looks_or_altered_is_refused_with_what_to_do(
    tmp_path: Path,
) -> None:
    claims = await DirectoryDriver(tmp_path / "one").store(STORE, [BIG])
    with pytest.raises(PayloadMissing, match="the same --temporal-payload-dir"):
        await DirectoryDriver(tmp_path / "another").retrieve(RETRIEVE, claims)
    [kept] = files_in(tmp_path / "one")
    kept.write_bytes(b"changed")
    with pytest.raises(PayloadMissing, match="SHA-256 differs"):
        await DirectoryDriver(tmp_path / "one").retrieve(RETRIEVE, claims)
    escape = StorageDriverClaim({"sha256": "../../../etc/passwd"})
    with pytest.raises(PayloadMissing, match="names no stored payload"):
        await DirectoryDriver(tmp_path / "one").retrieve(RETRIEVE, [escape])


async def test_a_sweep_removes_the_payloads_last_stored_before_the_retention_only(tmp_path: Path) -> None:
    driver = DirectoryDriver(tmp_path)
    other = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"y" * 300_000 + b'"')
    old, new = await driver.store(STORE, [BIG, other])
    two_days_ago = time.time() - 2 * 86_400
    old_file = tmp_path / old.claim_data["sha256"][:2] / old.claim_data["sha256"]
    os.utime(old_file, (two_days_ago, two_days_ago))
    assert sweep(tmp_path, 86_400) == 1
    assert [path.name for path in files_in(tmp_path)] == [new.claim_data["sha256"]]
    assert sweep(tmp_path / "never-made", 86_400) == 0


def test_the_payload_directory_is_the_one_given_or_beside_the_task_store(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    assert payload_dir(make_settings(temporal_payload_dir=tmp_path / "shared")) == tmp_path / "shared"
    store = tmp_path / "state" / "tasks.db"
    assert payload_dir(make_settings(store=str(store))) == tmp_path / "state" / "temporal-payloads"


async def test_a_spawn_larger_than_temporals_message_limit_runs_with_its_payloads_by_reference(
    fake_api: FakeApi, on_temporal: Callable[..., Settings], tmp_path: Path
) -> None:
    shared = tmp_path / "payloads"
    # 10 tasks of 500,000 characters: a 5 MB workflow input, over the 4 MB a message to Temporal may be.
    tasks = [TaskRequest(task=f"[[reply:answer {n}]] " + "x" * 500_000) for n in range(10)]
    settings = on_temporal(temporal_payload_dir=shared)
    async with (
        open_runtime(settings.model_copy(update={"worker": True})) as one,
        open_runtime(settings) as two,
    ):
        receipt = await one.registry.spawn(SpawnRequest(tasks=tasks), caller=ME)
        ids = [task.task_id for task in receipt.tasks]
        assert await two.registry.select(None, receipt.group_id, caller=ME) == ids  # read whole on another
        with anyio.fail_after(60):
            await two.registry.wait(ids)
        await two.registry.select(ids, None, caller=ME)
        ended = two.registry.snapshots(ids)
    assert [(snap.state, snap.output) for snap in ended] == [
        (TaskState.COMPLETED, f"answer {n}") for n in range(10)
    ]
    prompts = [r.body for r in fake_api.requests if r.path == "/v1/messages"]
    assert len(prompts) == 10 and all("x" * 500_000 in str(body) for body in prompts)  # whole, read back
    assert len(files_in(shared)) >= 11  # the spawn's input, and each task's call
