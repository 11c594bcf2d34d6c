"""The CLI backend against fake agent CLIs: real subprocesses, real pipes, real signals."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketListener
from pydantic import ValidationError

from server import (
    ErrorKind,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskFailure,
    TaskRequest,
    TaskState,
    Tokens,
)
from server.backends.cli import CommandBackend
from server.backends.formats import MAX_OUTPUT_BYTES
from server.backends.roster import Roster
from server.config.commands import CommandSpec, command_from_config
from server.core.registry import TaskRegistry, open_registry
from tests.server.backends import fake_clis
from tests.server.backends.fake_clis import is_gone, read_pids
from tests.server.fakes import ME

pytestmark = pytest.mark.anyio


class RecordingSink:
    """A TaskSink that keeps everything it is told and lets a test wait for some of it."""

    task_id = "t-recording"

    def __init__(self) -> None:
        self.started = 0
        self.appended: list[str] = []
        self.statuses: list[str] = []
        self.usage: list[tuple[str, Tokens, float | None]] = []
        self._changed = anyio.Event()

    @property
    def text(self) -> str:
        return "".join(self.appended)

    def response_started(self) -> None:
        self.started += 1
        self._poke()

    def append(self, text: str) -> None:
        self.appended.append(text)
        self._poke()

    def restart(self, note: str, cause: ErrorKind) -> None:
        raise AssertionError(f"a CLI run is never restarted ({note}, {cause})")

    def status(self, text: str) -> None:
        self.statuses.append(text)
        self._poke()

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        self.usage.append((model, tokens, cost_usd))

    def usage_so_far(self, model: str, tokens: Tokens) -> None:
        raise AssertionError(f"a CLI reports a run's usage once it ends ({model}, {tokens})")

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate`` holds (bound it with ``fail_after``)."""
        while not predicate():
            await self._changed.wait()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def request(
    prompt: str = "Say hi", *, model: str = "", system: str = "You are terse.", **more: Any
) -> SubagentRequest:
    return SubagentRequest(
        model=model, max_tokens=1000, system=system, prompt=prompt, cache_system=False, **more
    )


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory for fake executables, first on PATH for this test only."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}{os.pathsep}{os.environ.get('PATH', '')}")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def replay(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """``replay(stdout, status=0, stderr="")``: the ``env`` that has the REPLAY fake act so and record its run
    in ``tmp_path/record.json``."""

    def make(stdout: str | bytes = "", *, status: int = 0, stderr: str = "") -> dict[str, str]:
        output = tmp_path / "output"
        output.write_bytes(stdout.encode() if isinstance(stdout, str) else stdout)
        record = str(tmp_path / "record.json")
        return {
            "FAKE_OUTPUT": str(output),
            "FAKE_RECORD": record,
            "FAKE_STATUS": str(status),
            "FAKE_STDERR": stderr,
        }

    return make


def recorded(tmp_path: Path) -> dict[str, Any]:
    """What the REPLAY fake saw: argv (without the program), stdin, cwd, env."""
    return json.loads((tmp_path / "record.json").read_text())


async def run(
    backend: CommandBackend, req: SubagentRequest | None = None, sink: RecordingSink | None = None
) -> Any:
    with anyio.fail_after(30):
        return await backend.run(req or request(), sink or RecordingSink())


async def failure(backend: CommandBackend, req: SubagentRequest | None = None) -> TaskFailure:
    with pytest.raises(TaskFailure) as caught:
        await run(backend, req)
    return caught.value


def all_ended(pids: list[int], reaped: int | None) -> bool:
    return all(is_gone(pid) for pid in pids) and (reaped is None or not Path(f"/proc/{reaped}").exists())


async def wait_until_gone(pids: list[int], *, reaped: int | None = None) -> None:
    """Poll (bounded: an outside fact has no event to wait on) until every pid has ended, and ``reaped``
    (our own child) left no zombie either."""
    with anyio.fail_after(10):
        while True:
            if all_ended(pids, reaped):
                return
            await anyio.sleep(0.05)


# --- the presets ---------------------------------------------------------------------------------

CLAUDE_RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 1998,
    "num_turns": 1,
    "result": "Hello",
    "stop_reason": "end_turn",
    "session_id": "5f0c1d2e",
    "total_cost_usd": 0.0079825,
    "usage": {
        "input_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 15635,
        "output_tokens": 6,
    },
    "modelUsage": {"claude-sonnet-4-6": {"inputTokens": 3, "outputTokens": 6, "costUSD": 0.0079825}},
}


CLAUDE_SAID = "Looking at the code.\n· Read README.md"  #: the fake claude's partial output before its answer
CLAUDE_USAGE = ("claude-sonnet-4-6", Tokens(3, 6, cache_write_tokens=0, cache_read_tokens=15635), 0.0079825)


class Gate:
    """Holds the fake ``claude`` (through its FAKE_GATE) before its answer, until ``open`` is called."""

    def __init__(self, listener: SocketListener) -> None:
        self._listener = listener

    @property
    def env(self) -> dict[str, str]:
        return {"FAKE_GATE": str(self._listener.extra(SocketAttribute.local_port))}

    async def open(self) -> None:
        async with await self._listener.accept() as stream:
            await stream.send(b"go")


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    listeners = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listeners:
        (listener,) = listeners.listeners
        assert isinstance(listener, SocketListener)
        yield Gate(listener)


async def test_claude_streams_its_text_and_tool_uses_while_it_runs_then_answers_with_usage_and_cost(
    bin_dir: Path, root: Path, gate: Gate
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.CLAUDE)
    backend = CommandBackend("claude", command_from_config("claude", {"env": gate.env}), (root,))
    sink, results = RecordingSink(), list[SubagentResult]()

    async def run_it() -> None:
        results.append(await backend.run(request(), sink))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(run_it)
            await sink.wait_for(lambda: sink.text == CLAUDE_SAID)
            assert results == [] and sink.usage == []  # still running: the fake waits at the gate
            await gate.open()

    answer = "Read 22 characters of prompt."  # "You are terse.\n\nSay hi", on stdin
    assert (results[0].text, results[0].model, results[0].stop_reason) == (
        answer,
        "claude-sonnet-4-6",
        "end_turn",
    )
    assert sink.text == f"{CLAUDE_SAID}\n\n{answer}" and sink.statuses == [] and sink.started == 1
    assert sink.usage == [CLAUDE_USAGE]


async def test_the_claude_preset_asks_for_stream_json_read_only_and_passes_a_model_only_when_asked(
    bin_dir: Path, root: Path, tmp_path: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.REPLAY)
    spec = command_from_config("claude", {"env": replay(json.dumps(CLAUDE_RESULT) + "\n")})
    backend = CommandBackend("claude", spec, (root,))

    await run(backend)
    argv = recorded(tmp_path)["argv"]
    assert argv[:4] == ["-p", "--output-format", "stream-json", "--verbose"] and "--model" not in argv
    assert argv[argv.index("--disallowedTools") + 1] == "Bash,Edit,MultiEdit,Write,NotebookEdit"

    await run(backend, request(model="opus"))
    assert recorded(tmp_path)["argv"][-2:] == ["--model", "opus"]


async def test_claudes_single_json_result_is_read_at_the_end_with_its_usage_and_cost(
    bin_dir: Path, root: Path, tmp_path: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.REPLAY)
    spec = command_from_config(
        "claude",
        {
            "argv": ["claude", "-p", "--output-format", "json"],
            "env": replay(json.dumps(CLAUDE_RESULT, indent=2)),
        },
    )
    sink = RecordingSink()

    result = await run(CommandBackend("claude", spec, (root,)), request(), sink)

    assert (result.text, result.model, result.stop_reason) == ("Hello", "claude-sonnet-4-6", "end_turn")
    assert sink.usage == [CLAUDE_USAGE]
    assert recorded(tmp_path)["stdin"] == "You are terse.\n\nSay hi"
    assert sink.appended == [] and sink.statuses[0].startswith("running: ")  # nothing streams from it


async def test_claude_reporting_is_error_fails_the_task_with_its_message_and_its_cost_counts(
    bin_dir: Path, root: Path
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.CLAUDE)
    spec = command_from_config("claude", {"env": {"FAKE_ERROR": "Invalid API key · Please run /login"}})
    sink = RecordingSink()

    with pytest.raises(TaskFailure) as caught:
        await run(CommandBackend("claude", spec, (root,)), request(), sink)

    assert caught.value.kind is ErrorKind.COMMAND_FAILED
    assert "Claude Code failed (success): Invalid API key · Please run /login." in caught.value.message
    assert sink.text == CLAUDE_SAID and sink.usage == [CLAUDE_USAGE]


async def test_a_claude_answer_over_the_output_cap_fails_saying_so_and_the_cost_is_unknown(
    bin_dir: Path, root: Path
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.CLAUDE)
    spec = command_from_config("claude", {"env": {"FAKE_ANSWER_BYTES": str(MAX_OUTPUT_BYTES + 1)}})
    sink = RecordingSink()

    with pytest.raises(TaskFailure) as caught:
        await run(CommandBackend("claude", spec, (root,)), request(), sink)

    assert caught.value.kind is ErrorKind.COMMAND_FAILED
    assert "longer than the 4 MiB" in caught.value.message and "shorter answer" in caught.value.message
    assert sink.text == CLAUDE_SAID  # the lines too long to read are dropped, not shown in part
    assert sink.usage == [("claude", Tokens(), None)]


async def test_claude_reporting_an_error_fails_the_task_with_its_message_even_when_it_exits_1(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.REPLAY)
    report = {**CLAUDE_RESULT, "is_error": True, "result": "Invalid API key · Please run /login"}
    spec = command_from_config("claude", {"env": replay(json.dumps(report), status=1, stderr="")})

    error = await failure(CommandBackend("claude", spec, (root,)))

    assert error.kind is ErrorKind.COMMAND_FAILED
    assert "Invalid API key · Please run /login" in error.message and "fanout-mcp doctor" in error.message


CODEX_EVENTS = [
    {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
    {"type": "turn.started"},
    {"type": "error", "message": "Reconnecting... 1/5"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Looking around**"}},
    {
        "type": "item.started",
        "item": {
            "id": "item_1",
            "type": "command_execution",
            "command": "bash -lc ls",
            "status": "in_progress",
        },
    },
    {
        "type": "item.completed",
        "item": {
            "id": "item_1",
            "type": "command_execution",
            "command": "bash -lc ls",
            "aggregated_output": "README.md\n",
            "exit_code": 0,
            "status": "completed",
        },
    },
    {
        "type": "item.completed",
        "item": {"id": "item_2", "type": "agent_message", "text": "Looking at the files."},
    },
    {
        "type": "turn.completed",
        "usage": {"input_tokens": 1000, "cached_input_tokens": 600, "output_tokens": 50},
    },
    {"type": "turn.started"},
    {
        "type": "item.completed",
        "item": {"id": "item_3", "type": "agent_message", "text": "The answer is 42."},
    },
    {
        "type": "turn.completed",
        "usage": {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 122},
    },
]


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


async def test_codex_answers_with_its_last_agent_message_shows_progress_and_sums_usage(
    bin_dir: Path, root: Path, tmp_path: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "codex", fake_clis.REPLAY)
    spec = command_from_config("codex", {"env": replay(jsonl(CODEX_EVENTS))})
    sink = RecordingSink()

    result = await run(CommandBackend("codex", spec, (root,)), request(), sink)

    assert (result.text, result.model, result.stop_reason) == ("The answer is 42.", "codex", "end_turn")
    assert sink.text == "Looking at the files.\n\nThe answer is 42."
    assert "ran: bash -lc ls" in sink.statuses
    assert {model for model, _, _ in sink.usage} == {"codex"} and all(
        cost is None for _, _, cost in sink.usage
    )
    total = [sum(getattr(tokens, name) for _, tokens, _ in sink.usage) for name in Tokens.__slots__]
    assert total == [400 + 315, 50 + 122, 0, 600 + 24448]  # input without the cached part, output, cache
    assert recorded(tmp_path)["stdin"] == "You are terse.\n\nSay hi"


async def test_codex_failing_its_turn_fails_the_task_with_its_message(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "codex", fake_clis.REPLAY)
    events = [
        *CODEX_EVENTS[:2],
        {"type": "error", "message": "unexpected status 401 Unauthorized"},
        {"type": "turn.failed", "error": {"message": "unexpected status 401 Unauthorized"}},
    ]
    spec = command_from_config("codex", {"env": replay(jsonl(events), status=1)})

    error = await failure(CommandBackend("codex", spec, (root,)))

    assert error.kind is ErrorKind.COMMAND_FAILED
    assert "unexpected status 401 Unauthorized" in error.message


# --- the operator's own commands -----------------------------------------------------------------


@pytest.mark.parametrize("argv", [("mytool", "--ask", "{prompt}"), ("mytool", "--ask={prompt}")])
async def test_a_text_command_gets_the_prompt_as_an_argument_and_streams_its_answer(
    bin_dir: Path, root: Path, tmp_path: Path, replay: Callable[..., dict[str, str]], argv: tuple[str, ...]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    backend = CommandBackend("mytool", CommandSpec(argv=argv, env=replay("The answer.\n\n  ")), (root,))
    sink = RecordingSink()

    result = await run(backend, request("Say hi", follow_up=("Hi!!", "Less excited, please.")), sink)

    assert (result.text, result.model, result.stop_reason) == ("The answer.", "mytool", "end_turn")
    assert sink.text == "The answer.\n\n  " and sink.started == 1
    prompt = "You are terse.\n\nSay hi\n\nYour previous answer was:\nHi!!\n\nLess excited, please."
    seen = recorded(tmp_path)
    assert seen["argv"][-1] in (prompt, f"--ask={prompt}")
    assert seen["stdin"] == ""  # stdin is /dev/null when the prompt is an argument


@pytest.mark.parametrize(
    ("document", "answer"),
    [
        ({"data": {"answer": "42 is the answer"}}, "42 is the answer"),
        ({"data": {"answer": {"n": 42}}}, '{"n": 42}'),
    ],
)
async def test_a_json_command_answers_with_its_dotted_field(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]], document: dict[str, Any], answer: str
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    spec = CommandSpec(argv=("mytool",), output="json", field="data.answer", env=replay(json.dumps(document)))

    result = await run(CommandBackend("mytool", spec, (root,)))

    assert result.text == answer


async def test_a_json_command_without_the_field_fails_saying_what_was_expected_and_what_came(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    spec = CommandSpec(
        argv=("mytool",), output="json", field="data.answer", env=replay('{"data": {"other": 1}}')
    )

    error = await failure(CommandBackend("mytool", spec, (root,)))

    assert error.kind is ErrorKind.COMMAND_FAILED
    assert "'data.answer'" in error.message and '{"data": {"other": 1}}' in error.message


async def test_a_jsonl_command_answers_with_the_field_of_the_last_line_that_has_it(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    lines = 'starting up\n{"result": "first"}\n\n{"progress": 1}\n[1, 2]\n{"result": "last"}\n{"other": 2}'
    spec = CommandSpec(argv=("mytool",), output="jsonl", env=replay(lines))
    sink = RecordingSink()

    result = await run(CommandBackend("mytool", spec, (root,)), request(), sink)

    assert result.text == "last"
    assert sink.text == "first\n\nlast"  # each message streams into the partial output as it comes


async def test_the_partial_output_of_a_streaming_format_stops_at_the_cap_with_a_note(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    lines = "".join(json.dumps({"result": f"{i:05} " + "z" * 1000}) + "\n" for i in range(5000))  # ~5 MB
    spec = CommandSpec(argv=("mytool",), output="jsonl", env=replay(lines))
    sink = RecordingSink()

    result = await run(CommandBackend("mytool", spec, (root,)), request(), sink)

    assert result.text.startswith("04999 ")
    assert sink.text.endswith("\n\n[partial output cut at 4 MiB]")
    assert len(sink.text.encode()) <= MAX_OUTPUT_BYTES + 100


@pytest.mark.parametrize("output", ["text", "json", "jsonl", "claude", "codex"])
async def test_a_non_zero_exit_fails_the_task_with_the_stderr_tail(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]], output: str
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    stderr = "x" * 5000 + "\nError: not logged in. Run `mytool login`.\n"
    spec = CommandSpec.model_validate(
        {"argv": ["mytool"], "output": output, "env": replay(status=3, stderr=stderr)}
    )

    error = await failure(CommandBackend("mytool", spec, (root,)))

    assert error.kind is ErrorKind.COMMAND_FAILED
    assert "`mytool` exited with status 3: " in error.message
    assert (
        "Error: not logged in. Run `mytool login`." in error.message and "fanout-mcp doctor" in error.message
    )
    assert len(error.message) < 2200  # the tail of stderr, not all of it


async def test_a_cli_killed_by_a_signal_fails_the_task_naming_the_signal(bin_dir: Path, root: Path) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.SUICIDE)

    error = await failure(CommandBackend("mytool", CommandSpec(argv=("mytool",)), (root,)))

    assert error.kind is ErrorKind.COMMAND_FAILED and "killed by SIGTERM" in error.message


async def test_a_claude_that_exits_non_zero_before_its_result_reports_a_call_of_unknown_cost(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.REPLAY)
    init = {"type": "system", "subtype": "init", "session_id": "5f0c1d2e", "model": "claude-sonnet-4-6"}
    spec = command_from_config("claude", {"env": replay(jsonl([init]), status=1, stderr="crashed")})
    sink = RecordingSink()

    with pytest.raises(TaskFailure, match="exited with status 1: crashed"):
        await run(CommandBackend("claude", spec, (root,)), request(), sink)

    assert sink.usage == [("claude", Tokens(), None)]


async def test_a_program_that_never_started_reports_no_usage_at_all(root: Path) -> None:
    sink = RecordingSink()

    with pytest.raises(TaskFailure):
        await run(
            CommandBackend("nosuch", CommandSpec(argv=("fanout-test-no-such-cli",)), (root,)), None, sink
        )

    assert sink.usage == []


async def output_is(registry: TaskRegistry, task_id: str, text: str) -> None:
    """Poll (bound it with ``fail_after``) until the task's output is ``text``: the registry has no event
    for a partial output to wait on."""
    while True:
        if registry.snapshot(task_id, caller=ME).output == text:
            return
        await anyio.sleep(0.02)


async def test_a_cancelled_or_failed_cli_task_costs_null_not_zero(
    bin_dir: Path, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    fake_clis.install(bin_dir, "hang", fake_clis.HANG)
    fake_clis.install(bin_dir, "fail", fake_clis.REPLAY)
    hang = CommandSpec(argv=("hang", str(tmp_path / "pids"), "obey-term"), grace_s=0.5)
    fail = CommandSpec(argv=("fail",), env={"FAKE_STATUS": "2"})
    roster = Roster(
        {name: CommandBackend(name, spec, (tmp_path,)) for name, spec in [("hang", hang), ("fail", fail)]},
        default="hang",
    )
    tasks = [TaskRequest(task="wait"), TaskRequest(task="fail", backend="fail")]

    with anyio.fail_after(30):
        async with open_registry(make_settings(), roster) as registry:
            ids = [
                task.task_id for task in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks
            ]
            await output_is(registry, ids[0], "ready\n")
            registry.cancel(ids[:1], caller=ME)
            await registry.wait(ids)
            hung, failed = registry.snapshots(ids)

    assert (hung.state, failed.state) == (TaskState.CANCELLED, TaskState.FAILED)
    assert hung.usage.cost_usd is None and failed.usage.cost_usd is None


# --- pipes ---------------------------------------------------------------------------------------


async def test_a_megabyte_prompt_on_stdin_arrives_intact_while_the_cli_writes_a_megabyte(
    bin_dir: Path, root: Path
) -> None:
    fake_clis.install(bin_dir, "digest", fake_clis.DIGEST_STDIN)
    prompt = "é ✓ naïve\n" * 100_000  # > 1 MB in UTF-8, with characters split across pipe writes
    expected = f"You are terse.\n\n{prompt}".encode()

    result = await run(CommandBackend("digest", CommandSpec(argv=("digest",)), (root,)), request(prompt))

    assert result.text.splitlines()[-1] == f"{hashlib.sha256(expected).hexdigest()} {len(expected)}"


async def test_a_cli_that_never_reads_its_stdin_still_gets_its_answer_through(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    spec = CommandSpec(argv=("mytool",), env={**replay("ok"), "FAKE_SKIP_STDIN": "1"})

    result = await run(CommandBackend("mytool", spec, (root,)), request("p" * 2_000_000))

    assert result.text == "ok"


async def test_a_huge_text_answer_is_cut_at_the_cap_with_a_note_and_the_run_completes(
    bin_dir: Path, root: Path
) -> None:
    fake_clis.install(bin_dir, "flood", fake_clis.FLOOD)
    sink = RecordingSink()

    result = await run(
        CommandBackend("flood", CommandSpec(argv=("flood", "THE END")), (root,)), request(), sink
    )

    assert result.stop_reason == "output_cut"
    assert result.text.endswith("\n\n[output cut at 4 MiB]") and "THE END" not in result.text
    assert len(result.text.encode()) <= MAX_OUTPUT_BYTES + 100
    assert len(sink.text.encode()) <= MAX_OUTPUT_BYTES


async def test_a_jsonl_answer_after_the_cap_is_still_found(bin_dir: Path, root: Path) -> None:
    fake_clis.install(bin_dir, "flood", fake_clis.FLOOD)
    spec = CommandSpec(argv=("flood", '{"result": "found past 10 MB"}'), output="jsonl")

    result = await run(CommandBackend("flood", spec, (root,)))

    assert result.text == "found past 10 MB"


# --- where and how it runs -----------------------------------------------------------------------


SECRETS = {
    "DATABASE_URL": "postgres://app:hunter2@db/app",
    "SMTP_PASS": "hunter2",
    "GITHUB_PAT": "ghp_hunter2",
    "MYSQL_PWD": "hunter2",
    "SENTRY_DSN": "https://hunter2@sentry.example/1",
    "CI_JOB_JWT": "eyJhunter2",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/hunter2",
    "ANTHROPIC_API_KEY": "sk-ant-hunter2",
    "AWS_SECRET_ACCESS_KEY": "hunter2",
    "SSH_AUTH_SOCK": "/tmp/ssh-hunter2/agent.1",
    "session_cookie": "hunter2",
    "HTTPS_PROXY": "http://me:hunter2@proxy.example:3128",
    "http_proxy": "http://token@proxy.example:3128",
}
HARMLESS = {
    "HOME": "/home/someone",
    "LC_ALL": "C.UTF-8",
    "XDG_CONFIG_HOME": "/home/someone/.config",
    "TMPDIR": "/tmp/someone",
    "https_proxy": "http://proxy.example:3128",
    "NO_PROXY": "localhost,127.0.0.1",
    "SSL_CERT_FILE": "/etc/ssl/corp.pem",
    "NODE_EXTRA_CA_CERTS": "/etc/ssl/corp.pem",
}


async def test_only_harmless_variables_and_the_ones_a_command_names_reach_it(
    bin_dir: Path,
    root: Path,
    tmp_path: Path,
    replay: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    for name, value in {**SECRETS, **HARMLESS, "PLAIN_SETTING": "x", "PASSED_SECRET": "hush"}.items():
        monkeypatch.setenv(name, value)
    spec = CommandSpec(
        argv=("mytool",), pass_env=("PASSED_SECRET", "NOT_SET"), env={**replay("ok"), "ADDED": "yes"}
    )

    await run(CommandBackend("mytool", spec, (root,)))

    env: dict[str, str] = recorded(tmp_path)["env"]
    assert not any("hunter2" in value for value in env.values())
    assert not (SECRETS.keys() | {"PLAIN_SETTING", "NOT_SET"}) & env.keys()
    assert HARMLESS.items() <= env.items()
    assert (env["PASSED_SECRET"], env["ADDED"], env["PATH"]) == ("hush", "yes", os.environ["PATH"])


async def test_a_proxy_withheld_for_its_credentials_is_logged_once_by_name_never_by_value(
    bin_dir: Path,
    root: Path,
    replay: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    monkeypatch.setenv("HTTPS_PROXY", SECRETS["HTTPS_PROXY"])
    backend = CommandBackend("mytool", CommandSpec(argv=("mytool",), env=replay("ok")), (root,))

    await run(backend)
    await run(backend)

    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "HTTPS_PROXY" in warnings[0] and "pass_env" in warnings[0]
    assert "hunter2" not in caplog.text


async def test_a_proxy_with_credentials_passes_when_the_command_names_it(
    bin_dir: Path,
    root: Path,
    tmp_path: Path,
    replay: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    monkeypatch.setenv("HTTPS_PROXY", SECRETS["HTTPS_PROXY"])
    spec = CommandSpec(argv=("mytool",), pass_env=("HTTPS_PROXY",), env=replay("ok"))

    await run(CommandBackend("mytool", spec, (root,)))

    assert recorded(tmp_path)["env"]["HTTPS_PROXY"] == SECRETS["HTTPS_PROXY"]


async def test_the_claude_preset_gets_no_api_key_unless_configured_to(
    bin_dir: Path,
    root: Path,
    tmp_path: Path,
    replay: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.REPLAY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-hunter2")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-login"))
    env = replay(json.dumps(CLAUDE_RESULT))

    await run(CommandBackend("claude", command_from_config("claude", {"env": env}), (root,)))
    seen = recorded(tmp_path)["env"]
    assert "ANTHROPIC_API_KEY" not in seen and seen["CLAUDE_CONFIG_DIR"] == str(tmp_path / "claude-login")

    keyed = command_from_config("claude", {"env": env, "pass_env": ["ANTHROPIC_API_KEY"]})
    await run(CommandBackend("claude", keyed, (root,)))
    assert recorded(tmp_path)["env"]["ANTHROPIC_API_KEY"] == "sk-ant-hunter2"


CANARY = "sk-ant-CANARY-0f7e4c1d"


async def test_a_command_run_as_another_user_reads_nothing_of_a_root_servers_secrets(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert os.geteuid() == 0, "this test runs a command as nobody: run the tests as root (CI does)"
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)  # in this process, which plays the server
    python = fake_clis.python_runnable_by(65534)
    spec = CommandSpec(argv=(python, "-c", fake_clis.SNOOP, str(os.getpid())), user="nobody")

    said = (await run(CommandBackend("snoop", spec, (root,)))).text

    assert said.startswith("uid 65534 gid 65534 groups []")
    for what in ("environ", "maps", "mem", "fd"):
        assert f"{os.getpid()} {what}: denied" in said
    assert CANARY not in said


async def test_a_command_run_as_another_user_without_roots_works_in_a_private_directory_of_its_own() -> None:
    assert os.geteuid() == 0, "this test runs a command as nobody: run the tests as root (CI does)"
    write_here = (
        "import os; open('note', 'w').write('x'); print(os.stat('.').st_uid, oct(os.stat('.').st_mode))"
    )
    spec = CommandSpec(argv=(fake_clis.python_runnable_by(65534), "-c", write_here), user="nobody")

    said = (await run(CommandBackend("writer", spec, ()))).text

    assert said.strip() == "65534 0o40700"


def test_only_a_root_server_may_run_a_command_as_another_user(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="no user named 'no-such-user'"):
        CommandSpec(argv=("c",), user="no-such-user")
    assert CommandSpec(argv=("c",), user=54321).run_as == (54321, 54321)  # a uid needs no account
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    with pytest.raises(ValidationError, match="not as root, so it cannot run a command as another user"):
        CommandSpec(argv=("c",), user="nobody")
    assert CommandSpec(argv=("c",), user=1000).run_as is None  # its own user: nothing to change


async def test_it_runs_in_the_commands_cwd_else_the_first_root(
    bin_dir: Path, root: Path, tmp_path: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    other = tmp_path / "other"
    other.mkdir()
    env = replay("ok")

    await run(CommandBackend("mytool", CommandSpec(argv=("mytool",), env=env), (root, other)))
    assert recorded(tmp_path)["cwd"] == str(root)

    await run(CommandBackend("mytool", CommandSpec(argv=("mytool",), env=env, cwd=other), (root,)))
    assert recorded(tmp_path)["cwd"] == str(other.resolve())


async def test_tasks_of_one_spawn_run_each_in_its_own_cwd_else_the_first_root(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    for name in ("api", "web"):
        (tmp_path / name).mkdir()
    pwd = CommandSpec(argv=(sys.executable, "-c", "import os; print(os.getcwd())", "{prompt}"))
    backend = CommandBackend("pwd", pwd, (tmp_path,))
    tasks = [
        TaskRequest(task="where?", cwd="api"),
        TaskRequest(task="where?", cwd="web"),
        TaskRequest(task="?"),
    ]

    with anyio.fail_after(30):
        async with open_registry(make_settings(), backend) as registry:
            ids = [
                task.task_id for task in (await registry.spawn(SpawnRequest(tasks=tasks), caller=ME)).tasks
            ]
            await registry.wait(ids)
            outputs = [snapshot.output for snapshot in registry.snapshots(ids)]

    assert outputs == [str((tmp_path / "api").resolve()), str((tmp_path / "web").resolve()), str(tmp_path)]


async def test_a_tasks_cwd_beats_the_commands(
    bin_dir: Path, root: Path, tmp_path: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    other = tmp_path / "other"
    other.mkdir()
    spec = CommandSpec(argv=("mytool",), env=replay("ok"), cwd=other)

    await run(CommandBackend("mytool", spec, (root,)), request(cwd=root))

    assert recorded(tmp_path)["cwd"] == str(root)


async def test_without_roots_it_runs_in_a_private_directory_removed_afterwards(
    bin_dir: Path, tmp_path: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)

    await run(CommandBackend("mytool", CommandSpec(argv=("mytool",), env=replay("ok")), ()))

    cwd = Path(recorded(tmp_path)["cwd"])
    assert cwd.name.startswith("fanout-cli-") and cwd != Path.cwd() and cwd != Path.home()
    assert not await anyio.Path(cwd).exists()


@pytest.mark.parametrize(
    ("asked", "default", "expected"),
    [
        ("", None, []),
        ("", "small-model", ["--model", "small-model"]),
        ("big-model", "small-model", ["--model", "big-model"]),
    ],
)
async def test_model_args_are_added_only_when_a_model_is_known(
    bin_dir: Path,
    root: Path,
    tmp_path: Path,
    replay: Callable[..., dict[str, str]],
    asked: str,
    default: str | None,
    expected: list[str],
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    spec = CommandSpec(
        argv=("mytool", "--quiet"), model_args=("--model", "{model}"), model=default, env=replay("ok")
    )

    result = await run(CommandBackend("mytool", spec, (root,)), request(model=asked))

    assert recorded(tmp_path)["argv"] == ["--quiet", *expected]
    assert result.model == (expected[1] if expected else "mytool")


async def test_version_is_the_first_line_the_cli_prints(
    bin_dir: Path, root: Path, tmp_path: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.REPLAY)
    spec = command_from_config("claude", {"env": replay("2.1.3 (Claude Code)\nsecond line\n")})

    assert await CommandBackend("claude", spec, (root,)).version() == "2.1.3 (Claude Code)"
    assert recorded(tmp_path)["argv"] == ["--version"]


async def test_version_is_none_when_the_cli_fails(
    bin_dir: Path, root: Path, replay: Callable[..., dict[str, str]]
) -> None:
    fake_clis.install(bin_dir, "claude", fake_clis.REPLAY)
    spec = command_from_config("claude", {"env": replay("2.1.3\n", status=1)})

    assert await CommandBackend("claude", spec, (root,)).version() is None


async def test_a_missing_program_is_unavailable_with_the_install_hint(bin_dir: Path, root: Path) -> None:
    spec = CommandSpec(argv=("fanout-test-no-such-cli", "-p"), install_hint="install it from example.com")
    backend = CommandBackend("nosuch", spec, (root,))

    reason = backend.unavailable_reason()
    error = await failure(backend)

    assert (
        reason is not None
        and "`fanout-test-no-such-cli`" in reason
        and "install it from example.com" in reason
    )
    assert error.kind is ErrorKind.BACKEND_UNAVAILABLE and "install it from example.com" in error.message
    assert await backend.version() is None
    fake_clis.install(bin_dir, "fanout-test-no-such-cli", fake_clis.REPLAY)
    assert backend.unavailable_reason() is None  # looked up again: installed since


async def test_a_program_that_is_not_executable_is_unavailable(bin_dir: Path, root: Path) -> None:
    (bin_dir / "mytool").write_text("not a program")
    backend = CommandBackend("mytool", CommandSpec(argv=("mytool",)), (root,))

    assert backend.unavailable_reason() is not None
    assert (await failure(backend)).kind is ErrorKind.BACKEND_UNAVAILABLE


async def test_a_prompt_too_long_for_one_argument_fails_saying_to_send_it_on_stdin(
    bin_dir: Path, root: Path
) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    backend = CommandBackend("mytool", CommandSpec(argv=("mytool", "{prompt}")), (root,))

    error = await failure(backend, request("p" * 300_000))  # Linux takes at most 128 KiB in one argument

    assert error.kind is ErrorKind.INVALID_INPUT and "stdin" in error.message


async def test_a_root_that_is_gone_fails_the_task_naming_it(bin_dir: Path, tmp_path: Path) -> None:
    fake_clis.install(bin_dir, "mytool", fake_clis.REPLAY)
    gone = tmp_path / "deleted-root"

    error = await failure(CommandBackend("mytool", CommandSpec(argv=("mytool",)), (gone,)))

    assert error.kind is ErrorKind.COMMAND_FAILED and str(gone) in error.message


def test_it_is_a_backend_with_its_own_concurrency_bound(root: Path) -> None:
    backend = CommandBackend("claude", command_from_config("claude", {"max_concurrency": 3}), (root,))

    traits = backend.traits
    assert (backend.name, traits.caches_prompts, traits.max_concurrency) == ("claude", False, 3)
    assert backend.program == "claude"


def test_a_commands_timeout_is_its_tasks_default_and_must_be_positive(root: Path) -> None:
    assert CommandBackend("c", CommandSpec(argv=("c",)), (root,)).traits.default_timeout_s is None
    assert CommandBackend("c", CommandSpec(argv=("c",), timeout_s=90), (root,)).traits.default_timeout_s == 90
    for bad in (0, -1, 10**6):
        with pytest.raises(ValidationError, match="timeout_s"):
            CommandSpec(argv=("c",), timeout_s=bad)


def test_env_values_never_show_in_a_commands_repr_or_its_errors() -> None:
    spec = command_from_config("claude", {"env": {"ANTHROPIC_API_KEY": "sk-ant-SECRET"}})

    assert "sk-ant-SECRET" not in repr(spec) and "sk-ant-SECRET" not in str(spec)
    with pytest.raises(ValidationError) as caught:
        CommandSpec(argv=("c",), model_args=("--model",), env={"ANTHROPIC_API_KEY": "sk-ant-SECRET"})
    assert "sk-ant-SECRET" not in str(caught.value)


def test_a_task_runs_with_its_own_model_else_the_commands_else_the_clis_never_the_servers(root: Path) -> None:
    plain = CommandBackend("codex", command_from_config("codex", {}), (root,))
    pinned = CommandBackend("codex", command_from_config("codex", {"model": "gpt-5-codex"}), (root,))

    assert plain.model_for("o4-mini", "claude-sonnet-4-5") == "o4-mini"
    assert plain.model_for(None, "claude-sonnet-4-5") == ""
    assert pinned.model_for(None, "claude-sonnet-4-5") == "gpt-5-codex"


# --- ending the process group --------------------------------------------------------------------


@pytest.fixture
def hang(bin_dir: Path, tmp_path: Path) -> Callable[..., CommandBackend]:
    """``hang(term="obey-term", grace_s=2.0)``: a backend whose CLI starts a child and a grandchild and then
    hangs (it prints "ready" once all three pids are in ``tmp_path/pids``)."""
    fake_clis.install(bin_dir, "hang", fake_clis.HANG)

    def make(term: str = "obey-term", grace_s: float = 2.0) -> CommandBackend:
        spec = CommandSpec(argv=("hang", str(tmp_path / "pids"), term), grace_s=grace_s)
        return CommandBackend("hang", spec, (tmp_path,))

    return make


async def cancel_once_ready(backend: CommandBackend, said: str = "ready") -> list[str]:
    """Run ``backend`` until its CLI says ``said``, then cancel it from outside; return how run() ended."""
    sink, ended = RecordingSink(), list[str]()

    async def run_it() -> None:
        try:
            await backend.run(request(), sink)
        except anyio.get_cancelled_exc_class():
            ended.append("cancelled")
            raise

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(run_it)
            await sink.wait_for(lambda: said in sink.text)
            group.cancel_scope.cancel()
    assert sink.usage == [(backend.name, Tokens(), None)]  # it ran, and said nothing of tokens: cost unknown
    return ended


async def test_a_hanging_cli_and_its_children_are_gone_after_cancel(
    hang: Callable[..., CommandBackend], tmp_path: Path
) -> None:
    ended = await cancel_once_ready(hang())

    assert ended == ["cancelled"]  # the cancellation propagated out of run()
    leader, *descendants = read_pids(tmp_path / "pids")  # the leader wrote first
    assert len(descendants) == 2
    await wait_until_gone([leader, *descendants], reaped=leader)


async def test_a_hanging_codex_and_the_command_it_runs_are_all_gone_after_cancel(
    bin_dir: Path, root: Path, tmp_path: Path
) -> None:
    fake_clis.install(bin_dir, "codex", fake_clis.CODEX_HANG)
    spec = command_from_config("codex", {"env": {"FAKE_PIDS": str(tmp_path / "pids")}, "grace_s": 0.5})

    ended = await cancel_once_ready(CommandBackend("codex", spec, (root,)), "Running the tests.")

    assert ended == ["cancelled"]
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 3  # codex, the command it ran, and that command's child
    await wait_until_gone(pids, reaped=pids[0])


async def test_a_cli_and_all_it_started_are_gone_after_cancel_orphans_in_their_own_session_included(
    bin_dir: Path, root: Path, tmp_path: Path
) -> None:
    fake_clis.install(bin_dir, "family", fake_clis.FAMILY)
    spec = CommandSpec(argv=("family", str(tmp_path / "pids")), grace_s=0.5)

    ended = await cancel_once_ready(CommandBackend("family", spec, (root,)))

    assert ended == ["cancelled"]
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 4  # the CLI, its child (gone already), a grandchild, and one that called setsid
    await wait_until_gone(pids, reaped=pids[0])


async def test_a_cli_that_ignores_sigterm_is_killed_after_the_grace_period(
    hang: Callable[..., CommandBackend], tmp_path: Path
) -> None:
    ended = await cancel_once_ready(hang("ignore-term", grace_s=0.2))

    assert ended == ["cancelled"]
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 3
    await wait_until_gone(pids, reaped=pids[0])


async def test_a_timeout_around_run_leaves_nothing_alive(
    hang: Callable[..., CommandBackend], tmp_path: Path
) -> None:
    backend, sink, deadlines, ended = hang(), RecordingSink(), list[anyio.CancelScope](), list[str]()

    async def run_with_timeout() -> None:
        try:
            with anyio.fail_after(60) as scope:
                deadlines.append(scope)
                await backend.run(request(), sink)
        except TimeoutError:
            ended.append("timed out")

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(run_with_timeout)
            await sink.wait_for(lambda: "ready" in sink.text)
            deadlines[0].deadline = anyio.current_time()  # the timeout expires now: no guessing at durations

    assert ended == ["timed out"]
    assert sink.usage == [("hang", Tokens(), None)]
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 3
    await wait_until_gone(pids, reaped=pids[0])


@pytest.mark.parametrize("mode", ["holds-pipes", "detached", "setsid"])
async def test_a_child_left_behind_by_a_cli_that_exited_normally_is_killed(
    bin_dir: Path, root: Path, tmp_path: Path, mode: str
) -> None:
    fake_clis.install(bin_dir, "leave-child", fake_clis.LEAVE_CHILD)
    spec = CommandSpec(argv=("leave-child", str(tmp_path / "pids"), mode))

    result = await run(CommandBackend("leave-child", spec, (root,)))

    assert result.text == "the answer"
    await wait_until_gone(read_pids(tmp_path / "pids"))
