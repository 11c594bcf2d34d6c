"""Bad spawns are refused before any task exists; suspicious ones come back with warnings."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from server import InvalidInput, Settings, SpawnRequest, TaskRequest
from server.backends.cli import CommandBackend
from server.backends.roster import Roster
from server.config.commands import CommandSpec
from server.intake import prepare as prepare_module
from server.intake.files import FileReader
from server.intake.prepare import Intake, prepare
from tests.gates import ThreadGate
from tests.server.fakes import ScriptedBackend

MakeSettings = Callable[..., Settings]


async def intake_of(request: SpawnRequest, settings: Settings, caches: bool = True) -> Intake:
    reader = FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
    return await prepare(request, settings, reader, Roster.single(ScriptedBackend(caches_prompts=caches)))


def one(task: str = "do it", **fields: object) -> SpawnRequest:
    return SpawnRequest(tasks=[TaskRequest(task=task, **fields)])  # type: ignore[arg-type]


async def test_an_empty_spawn_is_refused_with_an_example(make_settings: MakeSettings) -> None:
    with pytest.raises(InvalidInput, match=r'tasks is empty.*"task"'):
        await intake_of(SpawnRequest(tasks=[]), make_settings())


async def test_too_many_tasks_are_refused_with_the_limit(make_settings: MakeSettings) -> None:
    request = SpawnRequest(tasks=[TaskRequest(task=f"t{i}") for i in range(4)])
    with pytest.raises(InvalidInput, match="4 tasks is more than one spawn may start \\(3\\)"):
        await intake_of(request, make_settings(max_tasks_per_spawn=3))


async def test_max_concurrency_below_one_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(InvalidInput, match="max_concurrency must be at least 1"):
        await intake_of(SpawnRequest(tasks=[TaskRequest(task="x")], max_concurrency=0), make_settings())


async def test_max_concurrency_above_the_server_limit_is_capped_with_a_warning(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(max_concurrency=20)
    intake = await intake_of(SpawnRequest(tasks=[TaskRequest(task="x")], max_concurrency=50), settings)
    assert intake.max_concurrency is None
    assert any("above the server's limit of 20" in w for w in intake.warnings)


async def test_files_are_read_into_the_prompt_following_the_template(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "auth.py").write_text("def login():\n    pass\n")
    request = one(
        "Review the login flow",
        role="security reviewer",
        context="A Flask app.",
        files=["src/auth.py"],
        output_format="a markdown list",
        focus_areas=["injection", "session fixation"],
        label="auth",
    )
    intake = await intake_of(request, make_settings())
    prompt = intake.tasks[0].write_prompt()
    assert prompt.startswith("You are a security reviewer specialist for this specific task.")
    order = [
        "Task:\nReview the login flow",
        "Context:\nA Flask app.",
        "Files to work with:",
        '<file path="src/auth.py">\ndef login():\n    pass\n</file>',
        "Output format:\na markdown list",
        "Focus areas:\n- injection\n- session fixation",
    ]
    positions = [prompt.index(part) for part in order]
    assert positions == sorted(positions)
    assert intake.tasks[0].spec.label == "auth"


async def test_shared_context_is_the_same_string_for_every_sibling(make_settings: MakeSettings) -> None:
    request = SpawnRequest(tasks=[TaskRequest(task="a"), TaskRequest(task="b")], shared_context="the rules")
    intake = await intake_of(request, make_settings())
    first, second = (t.request.system for t in intake.tasks)
    assert "the rules" in first
    assert first is second


async def test_a_path_outside_the_roots_is_refused(make_settings: MakeSettings, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("password")
    settings = make_settings(roots=(root,))
    for path in ["../secret.txt", str(tmp_path / "secret.txt"), "/etc/passwd"]:
        with pytest.raises(InvalidInput, match="outside the allowed roots"):
            await intake_of(one(files=[path]), settings)


async def test_a_symlink_that_leads_outside_the_roots_is_refused(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("password")
    os.symlink(tmp_path / "secret.txt", root / "innocent.txt")
    os.symlink(tmp_path, root / "escape")
    settings = make_settings(roots=(root,))
    for path in ["innocent.txt", "escape/secret.txt"]:
        with pytest.raises(InvalidInput, match="outside the allowed roots"):
            await intake_of(one(files=[path]), settings)


async def test_dotdot_that_stays_inside_a_root_is_fine(make_settings: MakeSettings, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b.txt").write_text("inside")
    intake = await intake_of(one(files=["a/../b.txt"]), make_settings())
    assert "inside" in intake.tasks[0].write_prompt()


async def test_missing_files_directories_and_binaries_are_refused(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "blob.bin").write_bytes(b"\x89PNG\x00\x00binary")
    settings = make_settings()
    with pytest.raises(InvalidInput, match="does not exist"):
        await intake_of(one(files=["nope.py"]), settings)
    with pytest.raises(InvalidInput, match="is a directory"):
        await intake_of(one(files=["dir"]), settings)
    with pytest.raises(InvalidInput, match="looks binary"):
        await intake_of(one(files=["blob.bin"]), settings)
    with pytest.raises(InvalidInput, match="empty or malformed"):
        await intake_of(one(files=[" "]), settings)


async def test_an_oversized_file_is_cut_at_a_line_with_a_note_and_a_warning(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    content = "".join(f"line {i}\n" for i in range(1000))
    (tmp_path / "big.txt").write_text(content)
    intake = await intake_of(one(files=["big.txt"]), make_settings(max_file_bytes=100))
    prompt = intake.tasks[0].write_prompt()
    assert f'note="cut: the first 94 of {len(content)} bytes are shown"' in prompt
    assert "line 0\n" in prompt and "line 999" not in prompt
    assert any("big.txt" in w and "only the first" in w for w in intake.warnings)


async def test_too_many_file_bytes_for_one_task_are_refused(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    for name in "abc":
        (tmp_path / f"{name}.txt").write_text("x" * 60 + "\n")
    with pytest.raises(InvalidInput, match="split it into tasks"):
        await intake_of(one(files=["a.txt", "b.txt", "c.txt"]), make_settings(max_task_file_bytes=100))


async def test_tasks_sharing_a_file_and_identical_tasks_are_warned_about(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    (tmp_path / "shared.py").write_text("x = 1\n")
    request = SpawnRequest(
        tasks=[
            TaskRequest(task="review", files=["shared.py"], label="one"),
            TaskRequest(task="test", files=["./shared.py"], label="two"),
            TaskRequest(task="same"),
            TaskRequest(task="same"),
        ]
    )
    intake = await intake_of(request, make_settings())
    assert any("'one' and 'two' all read" in w for w in intake.warnings)
    assert any("#3 and #4 are identical" in w for w in intake.warnings)


async def test_warm_first_needs_a_long_shared_context_several_tasks_and_a_caching_backend(
    make_settings: MakeSettings,
) -> None:
    long_context = "word " * 2_000
    two = SpawnRequest(tasks=[TaskRequest(task="a"), TaskRequest(task="b")], shared_context=long_context)
    settings = make_settings()
    assert (await intake_of(two, settings)).warm_first
    assert two.tasks and (await intake_of(two, settings)).tasks[0].request.cache_system
    assert not (await intake_of(two, settings, caches=False)).warm_first
    single = SpawnRequest(tasks=[TaskRequest(task="a")], shared_context=long_context)
    assert not (await intake_of(single, settings)).warm_first
    short = SpawnRequest(tasks=[TaskRequest(task="a"), TaskRequest(task="b")], shared_context="short")
    assert not (await intake_of(short, settings)).warm_first


async def test_warm_first_leads_with_the_first_task_of_each_model_and_leaves_dependants_out(
    make_settings: MakeSettings,
) -> None:
    models = [
        "claude-haiku-5-5",
        "claude-opus-5-5",
        "claude-haiku-5-5",
        "claude-opus-5-5",
        "claude-haiku-5-5",
    ]
    tasks = [TaskRequest(task=f"t{i}", model=model) for i, model in enumerate(models)]
    request = SpawnRequest(tasks=tasks, shared_context="word " * 2_000)
    intake = await intake_of(request, make_settings())
    # the fourth depends on another task (a retry's, say): it starts late anyway
    depends_on = [[], [], [], ["t-elsewhere"], []]
    assert intake.warm_leads(depends_on) == [0, 1, 0, None, 0]
    assert (await intake_of(request, make_settings(), caches=False)).warm_leads(depends_on) == [None] * 5


async def test_defaults_come_from_settings_and_tasks_can_override_them(make_settings: MakeSettings) -> None:
    settings = make_settings(model="claude-haiku-5-5", max_tokens=100, task_timeout_s=30)
    request = SpawnRequest(
        tasks=[
            TaskRequest(task="a"),
            TaskRequest(task="b", model="claude-opus-5-5", max_tokens=7, timeout_s=5),
        ]
    )
    default, custom = (await intake_of(request, settings)).tasks
    assert (default.spec.model, default.request.max_tokens, default.spec.timeout_s) == (
        "claude-haiku-5-5",
        100,
        30,
    )
    assert (custom.spec.model, custom.request.max_tokens, custom.spec.timeout_s) == ("claude-opus-5-5", 7, 5)
    assert default.spec.label == "task 1"


async def test_a_server_without_roots_refuses_every_file_and_says_how_to_add_one(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    settings = Settings(roots=())
    with pytest.raises(InvalidInput, match=r"no allowed roots.*--root"):
        await intake_of(one(files=[str(tmp_path / "a.txt")]), settings)
    assert (await intake_of(one(), settings)).tasks  # tasks without files still run


async def test_a_home_directory_of_an_unknown_user_is_a_clear_error(make_settings: MakeSettings) -> None:
    with pytest.raises(InvalidInput, match="home directory that does not exist"):
        await intake_of(one(files=["~no-such-user-fanout/x.py"]), make_settings())


def test_a_blank_task_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="task is blank"):
        TaskRequest(task="   ")


async def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "file.txt").write_text("inside\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    reader = FileReader((root,), max_file_bytes=1000)
    info = reader.check("file.txt")
    (root / "file.txt").unlink()
    os.symlink(tmp_path / "secret.txt", root / "file.txt")  # swapped between the check and the read
    with pytest.raises(InvalidInput, match="outside the allowed roots"):
        reader.read(info)


async def test_tools_are_refused_for_a_backend_that_does_not_run_them(make_settings: MakeSettings) -> None:
    with pytest.raises(
        InvalidInput, match=r"task 1 \(#1\) asks for tools, which backend 'scripted' does not run"
    ):
        await intake_of(one(tools=["read"]), make_settings())
    with pytest.raises(InvalidInput, match="the spawn asks for tools, but no task runs on a backend"):
        await intake_of(SpawnRequest(tasks=[TaskRequest(task="x")], tools=["read"]), make_settings())


async def test_the_spawns_tools_go_to_tasks_whose_backend_runs_them_and_a_task_can_opt_out(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    reader = FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
    roster = Roster(
        {"reader": ScriptedBackend(name="reader", offers_tools=True), "plain": ScriptedBackend(name="plain")},
        default="reader",
    )
    request = SpawnRequest(
        tasks=[
            TaskRequest(task="look around"),
            TaskRequest(task="on a CLI", backend="plain"),
            TaskRequest(task="no tools for me", tools=[]),
        ],
        tools=["read"],
    )
    intake = await prepare(request, settings, reader, roster)
    assert [p.request.tools for p in intake.tasks] == [True, False, False]
    assert any("tasks 2 (plain) run without the spawn's tools" in w for w in intake.warnings)


async def test_a_commands_timeout_is_the_default_of_its_tasks_and_a_tasks_own_wins(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings()
    reader = FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
    slow = CommandBackend("slow", CommandSpec(argv=(sys.executable,), timeout_s=1800), (tmp_path,))
    request = SpawnRequest(tasks=[TaskRequest(task="a"), TaskRequest(task="b", timeout_s=30)])

    intake = await prepare(request, settings, reader, Roster.single(slow))

    assert [task.spec.timeout_s for task in intake.tasks] == [1800, 30]


def cli_roster(root: Path) -> Roster:
    """A roster whose default is an agent CLI command, and which also has a backend that runs in no
    directory ('scripted')."""
    cli = CommandBackend("mycli", CommandSpec(argv=(sys.executable,)), (root,))
    return Roster({"mycli": cli, "scripted": ScriptedBackend()}, default="mycli")


async def test_a_tasks_cwd_is_resolved_inside_the_roots_for_its_cli(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    (tmp_path / "services" / "billing").mkdir(parents=True)
    settings = make_settings()
    reader = FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
    request = SpawnRequest(
        tasks=[
            TaskRequest(task="review", cwd="services/billing"),
            TaskRequest(task="review", cwd=str(tmp_path / "services")),
            TaskRequest(task="review"),
        ]
    )

    intake = await prepare(request, settings, reader, cli_roster(tmp_path))

    cwds = [task.request.cwd for task in intake.tasks]
    assert cwds == [(tmp_path / "services" / "billing").resolve(), (tmp_path / "services").resolve(), None]
    assert not any("identical" in warning for warning in intake.warnings)


@pytest.mark.parametrize(
    ("cwd", "says"),
    [
        ("..", "directory '..' is outside the allowed roots"),
        ("/", "outside the allowed roots"),
        ("missing", "'missing' is not a directory"),
        ("notes.txt", "'notes.txt' is not a directory"),
    ],
)
async def test_a_cwd_outside_the_roots_missing_or_not_a_directory_is_refused_saying_what_to_do(
    make_settings: MakeSettings, tmp_path: Path, cwd: str, says: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.txt").write_text("not a directory\n")
    settings = make_settings(roots=(root,))
    reader = FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)

    with pytest.raises(InvalidInput) as caught:
        await prepare(one(cwd=cwd, label="api"), settings, reader, cli_roster(root))

    assert str(caught.value).startswith("task 1 ('api') cwd: ") and says in str(caught.value)
    assert "leave cwd out" in str(caught.value).lower()


async def test_a_cwd_for_a_backend_that_runs_in_no_directory_is_refused_with_guidance(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings()
    reader = FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)

    with pytest.raises(InvalidInput, match=r"task 1 \(#1\) sets cwd, but backend 'scripted' runs in no"):
        await prepare(one(cwd=".", backend="scripted"), settings, reader, cli_roster(tmp_path))


async def test_output_schemas_are_checked_in_a_worker_thread(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    with ThreadGate(prepare_module.resolve_schema) as gate:
        monkeypatch.setattr(prepare_module, "resolve_schema", gate)
        async with anyio.create_task_group() as tg:
            tg.start_soon(intake_of, one(output_schema=schema), make_settings())
            await gate.entered()  # the check is held, and this loop goes on
            gate.open()
