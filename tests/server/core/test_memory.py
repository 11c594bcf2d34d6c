"""What queued tasks hold: their spawn's files once, not a prompt each; and the bound on all of it."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from server import (
    InvalidInput,
    Settings,
    SpawnRequest,
    TaskRequest,
    open_registry,
)
from server.backends.roster import Roster
from server.intake.files import FileReader
from server.intake.prepare import prepare
from server.intake.subagent_prompt import TaskPrompt
from tests.server.fakes import ME, ScriptedBackend, gated

MakeSettings = Callable[..., Settings]
FILE_BYTES = 199_000


def write_files(root: Path, count: int, prefix: str = "f") -> list[str]:
    names: list[str] = []
    for i in range(count):
        (root / f"{prefix}{i}.txt").write_text((f"line {i} of {prefix}\n" * 20_000)[:FILE_BYTES])
        names.append(f"{prefix}{i}.txt")
    return names


def naming(files: list[str], tasks: int) -> SpawnRequest:
    return SpawnRequest(tasks=[TaskRequest(task=f"part {i}", files=files) for i in range(tasks)])


async def test_every_task_of_a_spawn_shares_one_text_of_each_file_and_no_prompt_is_written_while_queued(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    files = write_files(tmp_path, 3)
    settings = make_settings()
    spawn = SpawnRequest(
        tasks=[TaskRequest(task=f"part {i}", files=[*files, f"./{files[0]}"]) for i in range(20)]
    )

    intake = await prepare(spawn, settings, FileReader(settings.roots, max_file_bytes=FILE_BYTES),
                           Roster.single(ScriptedBackend()))  # fmt: skip

    prompts = [planned.prompt for planned in intake.tasks]
    assert all(isinstance(p, TaskPrompt) for p in prompts)
    assert all(planned.request.prompt == "" for planned in intake.tasks)
    first = prompts[0]
    assert isinstance(first, TaskPrompt)
    for prompt in prompts[1:]:
        assert isinstance(prompt, TaskPrompt)
        assert all(prompt.files[name].text is first.files[name].text for name in files)
    # Two paths to one file: read once, one text, each path kept as written.
    assert first.files[f"./{files[0]}"].text is first.files[files[0]].text
    assert first.files[f"./{files[0]}"].path == f"./{files[0]}"
    assert intake.shared_bytes == len(intake.tasks[0].request.system) + 3 * FILE_BYTES


async def test_a_task_gets_its_files_in_the_prompt_written_when_it_starts(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    files = write_files(tmp_path, 2)
    backend = ScriptedBackend()
    async with open_registry(make_settings(), backend) as registry:
        receipt = await registry.spawn(naming(files, 2), caller=ME)
        with anyio.fail_after(5):
            await registry.wait([t.task_id for t in receipt.tasks])

    assert len(backend.calls) == 2
    for call in backend.calls:
        assert all(f'<file path="{name}">' in call.prompt for name in files)
        assert "line 1 of f" in call.prompt


async def test_queued_tasks_naming_the_same_files_hold_them_once_not_once_each(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    files = write_files(tmp_path, 5)  # ~1 MB; a prompt each would be ~1 MB per task
    release = anyio.Event()
    backend = ScriptedBackend(gated(release))
    settings = make_settings(max_concurrency=1, max_tasks_per_spawn=200)
    async with open_registry(settings, backend) as registry:
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            receipt = await registry.spawn(naming(files, 200), caller=ME)
            with anyio.fail_after(5):
                await backend.wait_calls(1)
            await anyio.wait_all_tasks_blocked()
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert registry.counts([t.task_id for t in receipt.tasks]).queued == 199
        release.set()
    # The files once (~1 MB) and the one running prompt (~1 MB), plus bookkeeping: well under the
    # ~200 MB that a written prompt per queued task would take.
    assert held - before < 12_000_000


async def test_a_spawn_past_max_queued_bytes_is_refused_until_unfinished_tasks_end(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    first, second = write_files(tmp_path, 3, "a"), write_files(tmp_path, 3, "b")
    release = anyio.Event()
    backend = ScriptedBackend(gated(release))
    async with open_registry(make_settings(max_queued_bytes=1_000_000), backend) as registry:
        held = await registry.spawn(naming(first, 4), caller=ME)
        assert 3 * FILE_BYTES < registry.statistics().held_bytes < 1_000_000

        with pytest.raises(
            InvalidInput, match=r"at most 1000000 bytes .*--max-queued-bytes.*wait for tasks to finish"
        ):
            await registry.spawn(naming(second, 1), caller=ME)

        release.set()
        with anyio.fail_after(5):
            await registry.wait([t.task_id for t in held.tasks])
        assert registry.statistics().held_bytes == 0
        again = await registry.spawn(naming(second, 1), caller=ME)
        with anyio.fail_after(5):
            await registry.wait([t.task_id for t in again.tasks])
        assert registry.snapshot(again.tasks[0].task_id, caller=ME).output == "done"


async def test_a_spawn_of_many_small_tasks_counts_each_tasks_own_text(make_settings: MakeSettings) -> None:
    release = anyio.Event()
    async with open_registry(
        make_settings(max_queued_bytes=50_000), ScriptedBackend(gated(release))
    ) as registry:
        big = SpawnRequest(tasks=[TaskRequest(task="x" * 1_000, context="y" * 1_000) for _ in range(30)])

        with pytest.raises(InvalidInput, match="take 6"):
            await registry.spawn(big, caller=ME)

        assert registry.statistics().held_bytes == 0
        release.set()
