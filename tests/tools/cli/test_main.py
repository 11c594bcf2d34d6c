"""The installed ``fanout-mcp`` script: over stdio with the real MCP client, and the ``run`` command."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from server import OPTIONS
from tests.answers import finding, reply, synthesis
from tests.fake_api import FakeApi
from tests.server.backends import fake_clis
from tests.temporal_dev import DevServer
from tests.tools.served import as_nobody, command_line, env_for, read_until, running, served

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(sys.executable).with_name("fanout-mcp")


def script_env(fake: FakeApi) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "test-key",
        "HOME": os.environ["HOME"],  # the fixture's empty home: no credentials on disk
        "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"],  # the test's own task store
        "PATH": os.environ.get("PATH", ""),
    }


def run_script(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_mcp_client_over_stdio_spawns_collects_and_synthesizes_twenty_tasks(
    fake_api: FakeApi, tmp_path: Path, mode: str
) -> None:
    assert SCRIPT.exists(), "install the project first (pip install -e '.[test]')"
    params = StdioServerParameters(
        command=str(SCRIPT), args=["--root", str(tmp_path)], env=script_env(fake_api)
    )
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
            expected = (mode == "auto" and "2026-07-28") or "2025-11-25"
            assert client.protocol_version == expected
            spawned = await client.call_tool(
                "spawn_parallel", {"tasks": [{"task": f"part {i} [[reply:answer {i}]]"} for i in range(20)]}
            )
            content: Any = spawned.structured_content
            ids: list[str] = content["task_ids"]
            outputs: dict[str, str] = {}
            while len(outputs) < 20:
                collected: Any = await client.call_tool("task_output", {"task_ids": ids, "wait_s": 20})
                for view in collected.structured_content["tasks"]:
                    if view["state"] == "completed":
                        outputs[view["task_id"]] = view["output"]
            assert [outputs[i] for i in ids] == [f"answer {n}" for n in range(20)]
            instructions = reply(synthesis("Twenty answers.", ids[:2]))
            synthesis_result: Any = await client.call_tool(
                "synthesize", {"task_ids": ids, "mode": "llm", "instructions": instructions}
            )
            result = synthesis_result.structured_content
            assert result["done"] and result["mode"] == "llm"
            assert len(result["sources"]) == 20 and result["summary"] == "Twenty answers."


def test_run_executes_a_plan_and_prints_results_and_synthesis(fake_api: FakeApi, tmp_path: Path) -> None:
    plan = {
        "shared_context": "A small web app.",
        "output_schema": "findings",
        "tasks": [
            {
                "label": label,
                "task": f"Review for {label} "
                + reply({"findings": [finding(title, "high", "app.py", 3, fix)]}),
            }
            for label, title, fix in [
                ("security", "SQL injection in login", "Use bound parameters"),
                ("performance", "Login query open to SQL injection", "Bind the parameters"),
            ]
        ],
        "synthesis": {"mode": "merge"},
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    result = run_script("run", str(path), "--root", str(tmp_path), env=script_env(fake_api))
    assert result.returncode == 0, result.stderr
    for label in ["security", "performance"]:
        assert f"## {label} [t-" in result.stdout
        assert f"] {label}: completed" in result.stderr
    assert "# Synthesis (merge)" in result.stdout
    assert result.stdout.count("**[high] SQL injection in login**") == 1  # the duplicate appears once
    assert "[2/2]" in result.stderr


def test_run_against_an_endpoint_that_refuses_fails_in_seconds_naming_the_url_and_shows_each_retry(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-api03-not-a-real-key",
        "FANOUT_CONNECT_GRACE": "1",  # the default is 30 s; the path is the same
        "HOME": os.environ["HOME"],
        "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"],  # the test's own task store
        "PATH": str(tmp_path),  # no claude CLI for auto to fall back on
    }
    done = run_script("run", "examples/review-plan.json", env=env)
    assert done.returncode == 1, done.stderr  # tasks failed (documented: 1)
    assert done.stdout.count(f"**backend_unavailable**: could not connect to the Messages API at {url}") == 4
    assert "Check ANTHROPIC_BASE_URL (set to it), the network" in done.stdout
    assert (
        "# Synthesis (merge)" in done.stdout and "Nothing to synthesize: none of the 4 task(s)" in done.stdout
    )
    assert "[4/4]" in done.stderr and "failed (backend_unavailable)" in done.stderr
    assert re.search(r"WARNING .*: task t-\S+ \(\w+\) retrying \[api_error\]: could not connect", done.stderr)
    assert "not-a-real-key" not in done.stdout + done.stderr


def test_run_with_the_readmes_placeholder_key_stops_at_once_naming_the_variable(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": "sk-ant-...", "HOME": os.environ["HOME"], "PATH": str(tmp_path),
           "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]}  # fmt: skip
    done = run_script("run", "examples/review-plan.json", env=env)
    assert done.returncode == 2 and done.stdout == ""  # a configuration problem (documented: 2)
    assert "ANTHROPIC_API_KEY holds a placeholder" in done.stderr


def test_the_example_plan_is_a_valid_plan_over_files_that_exist() -> None:
    from server.app.plan import load_plan

    plan = load_plan(REPO / "examples" / "review-plan.json")
    assert [t.label for t in plan.tasks] == ["security", "performance", "testing", "architecture"]
    assert all((REPO / path).is_file() for task in plan.tasks for path in task.files)
    assert plan.output_schema == "findings"


def test_run_with_json_prints_machine_readable_results(fake_api: FakeApi, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {"tasks": [{"task": "[[reply:one]]"}, {"task": "[[fail:400]]"}], "synthesis": {"mode": "merge"}}
        )
    )
    result = run_script("run", str(plan), "--json", "--root", str(tmp_path), env=script_env(fake_api))
    assert result.returncode == 1  # a task failed
    data = json.loads(result.stdout)
    assert [t["state"] for t in data["tasks"]] == ["completed", "failed"]
    assert data["synthesis"]["mode"] == "merge" and len(data["synthesis"]["missing"]) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"tasks": [{"role": "no task"}]}', "tasks.0.task"),
        ('{"tasks": []}', "tasks is empty"),
    ],
)
def test_run_refuses_a_bad_plan_with_a_clear_message(
    fake_api: FakeApi, tmp_path: Path, content: str, message: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    result = run_script("run", str(plan), "--root", str(tmp_path), env=script_env(fake_api))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_bad_setting_stops_the_server_at_start_with_the_flag_named(fake_api: FakeApi) -> None:
    result = run_script("--max-concurrency", "zero", env=script_env(fake_api))
    assert result.returncode == 2
    assert "--max-concurrency" in result.stderr
    assert result.stdout == ""  # stdout belongs to the protocol


def test_help_documents_every_option_and_environment_variable() -> None:
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=True)
    for option in OPTIONS.values():
        assert option.flag in result.stdout
        assert option.env in result.stdout
    for variable in ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]:
        assert variable in result.stdout


def doctor(path: Path, *flags: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": str(path),
        "HOME": os.environ["HOME"],
        "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"],
        **extra,
    }  # no API key, no CLI but what path has
    return run_script("doctor", *flags, "--root", str(path), env=env)


def test_doctor_on_a_bare_machine_says_what_to_set_or_install_for_each_backend(tmp_path: Path) -> None:
    done = doctor(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert set(lines) == {"anthropic", "claude", "codex", "batch", "sampling"}
    assert "missing" in lines["anthropic"] and "ANTHROPIC_API_KEY" in lines["anthropic"]
    assert "npm install -g @anthropic-ai/claude-code" in lines["claude"]
    assert "npm install -g @openai/codex" in lines["codex"]
    assert "missing" in lines["batch"] and "ANTHROPIC_API_KEY" in lines["batch"]
    assert "depends on the MCP client" in lines["sampling"]
    assert "tasks that name no backend cannot run (--backend auto)" in done.stdout


def test_doctor_finds_a_logged_in_cli_and_its_version_without_spending_tokens(tmp_path: Path) -> None:
    version_only = (
        'import sys\nprint("2.1.300 (Claude Code)") if sys.argv[1:] == ["--version"] else sys.exit(3)'
    )
    fake_clis.install(tmp_path, "claude", version_only)
    done = doctor(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"2.1.300 (Claude Code) ({tmp_path / 'claude'})" in done.stdout
    assert "tasks that name no backend run on: claude (--backend auto)" in done.stdout


def api_lines(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    return lines["anthropic"], lines["batch"]


def test_doctor_check_tries_the_endpoint_with_one_free_request_and_reports_the_latency(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    unchecked = doctor(tmp_path, ANTHROPIC_BASE_URL=fake_api.base_url, ANTHROPIC_API_KEY="test-key")
    assert fake_api.token_counts == []  # without --check doctor sends nothing
    assert "doctor --check" in api_lines(unchecked)[0]
    env = {**script_env(fake_api), "PATH": str(tmp_path)}
    done = run_script("doctor", "--check", "--root", str(tmp_path), env=env)
    anthropic_line, batch_line = api_lines(done)
    assert done.returncode == 0, done.stdout + done.stderr
    assert anthropic_line.split()[1] == "ok"
    assert re.search(
        rf"{fake_api.base_url} accepted ANTHROPIC_API_KEY \(.* answered in \d+ ms\)", anthropic_line
    )
    assert batch_line.split()[1] == "ok" and "passed its check" in batch_line
    assert [r.status for r in fake_api.token_counts] == [200] and fake_api.requests == []


def test_doctor_check_names_the_variable_of_a_refused_key(fake_api: FakeApi, tmp_path: Path) -> None:
    fake_api.config.api_keys = ["the-real-key"]
    done = run_script(
        "doctor", "--check", "--root", str(tmp_path), env={**script_env(fake_api), "PATH": str(tmp_path)}
    )
    anthropic_line, batch_line = api_lines(done)
    assert done.returncode == 1, done.stdout + done.stderr
    assert anthropic_line.split()[1] == "failed" and batch_line.split()[1] == "failed"
    assert "refused the credentials (401 authentication_error: invalid x-api-key" in anthropic_line
    assert "Fix ANTHROPIC_API_KEY" in anthropic_line and "test-key" not in done.stdout + done.stderr
    assert "tasks that name no backend cannot run (--backend auto)" in done.stdout


def test_doctor_check_names_the_url_it_could_not_connect_to(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    done = doctor(tmp_path, "--check", ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="sk-ant-api03-x")
    anthropic_line, _ = api_lines(done)
    assert done.returncode == 1, done.stdout + done.stderr
    assert anthropic_line.split()[1] == "failed"
    assert f"could not connect to {url} (ConnectError" in anthropic_line
    assert "Check ANTHROPIC_BASE_URL (set to it), the network" in anthropic_line


# A CLI that answers --version, and --help (of the program, or of `codex exec`) with the options given.
HELPFUL = """
import sys
args = sys.argv[1:]
if args == ["--version"]:
    print({version!r})
elif args and args[-1] == "--help":
    print("Usage: ...\\nOptions:\\n" + "\\n".join("  " + option for option in {options!r}))
else:
    sys.exit(3)
"""

CLAUDE_OPTIONS = [
    "-p, --print",
    "--output-format <format>",
    "--verbose",
    "--allowedTools, --allowed-tools <tools...>",
    "--disallowedTools, --disallowed-tools <tools...>",
    "--model <model>",
]


def test_doctor_checks_that_a_presets_cli_knows_the_flags_it_will_be_given(tmp_path: Path) -> None:
    old_codex_options = ["-m, --model <MODEL>", "-s, --sandbox <SANDBOX_MODE>", "--skip-git-repo-check"]
    helpful = HELPFUL.format(version="2.1.300 (Claude Code)", options=CLAUDE_OPTIONS)
    fake_clis.install(tmp_path, "claude", helpful)
    fake_clis.install(tmp_path, "codex", HELPFUL.format(version="codex-cli 0.1.0", options=old_codex_options))
    done = doctor(tmp_path)
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines["claude"].split()[1] == "ok" and "unchecked" not in lines["claude"]
    assert lines["codex"].split()[1] == "missing"
    assert (
        "codex-cli 0.1.0" in lines["codex"]
        and "is too old: its --help does not list --json" in lines["codex"]
    )
    assert "npm install -g @openai/codex" in lines["codex"]


def test_doctor_names_set_up_variables_a_preset_does_not_get_never_their_values(tmp_path: Path) -> None:
    fake_clis.install(
        tmp_path, "claude", HELPFUL.format(version="2.1.300 (Claude Code)", options=CLAUDE_OPTIONS)
    )
    done = doctor(
        tmp_path, CLAUDE_CODE_USE_BEDROCK="1", AWS_SECRET_ACCESS_KEY="supersecret", UNRELATED_TOKEN="other"
    )
    (claude,) = [line for line in done.stdout.splitlines() if line.startswith("  claude")]
    assert "set here but not passed to it: AWS_SECRET_ACCESS_KEY, CLAUDE_CODE_USE_BEDROCK" in claude
    assert "[commands.claude] pass_env" in claude
    assert "supersecret" not in done.stdout + done.stderr and "UNRELATED_TOKEN" not in done.stdout


CANARY = "sk-ant-CANARY-5b2d9e71"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can read (the tests' own temporary directories are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="fanout-shared-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


async def test_no_task_of_a_server_run_by_an_ordinary_user_can_read_its_secrets(shared_dir: Path) -> None:
    assert os.geteuid() == 0, "this test runs the server as nobody: run the tests as root (CI does)"
    python = fake_clis.python_runnable_by(65534)
    config = shared_dir / "fanout.json"
    snoop = [python, "-c", fake_clis.SNOOP, str(os.getpid())]  # up to this test, and no further
    config.write_text(json.dumps({"commands": {"snoop": {"argv": snoop}}}))
    argv = as_nobody(
        command_line("--config", str(config), "--root", str(shared_dir), "--store", "memory", python=python)
    )

    with anyio.fail_after(60):
        async with served(argv, env_for(shared_dir, ANTHROPIC_API_KEY=CANARY)) as server:
            spawned = await server.call_tool("spawn_parallel", {"tasks": [{"task": "x", "backend": "snoop"}]})
            answer: Any = {"done": False}
            while not answer["done"]:
                answer = await server.call_tool(
                    "task_output", {"task_ids": spawned["task_ids"], "wait_s": 20}
                )

    (task,) = answer["tasks"]
    said = task["output"]
    assert task["state"] == "completed" and said.startswith("uid 65534 gid 65534 groups []")
    for what in ("environ", "maps", "mem", "fd"):  # the server's, as its own user's task sees them
        assert f"{server.pid} {what}: denied" in said
    assert CANARY not in json.dumps(answer)


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_neither_the_mcp_sdk_nor_the_anthropic_sdk(flag: str) -> None:
    heavy = {"mcp", "mcp_types", "anthropic", "httpx2", "rich"}
    probe = (
        "import sys\nfrom fanout_mcp.tools.cli.main import main\n"
        f"try:\n    main([{flag!r}])\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{name.split('.')[0] for name in sys.modules}} & {heavy!r}), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "fanout-mcp" in done.stdout
    assert done.stderr.strip() == "[]"


def test_run_shows_each_retry_with_its_cause_before_the_task_ends(fake_api: FakeApi, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    task = {"label": "flaky", "task": "[[fail:529;count=2;retry-after-ms=300]] [[reply:done at last]]"}
    plan.write_text(json.dumps({"tasks": [task], "synthesis": {"mode": "none"}}))
    result = run_script("run", str(plan), "--root", str(tmp_path), env=script_env(fake_api))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    retries = [
        i for i, line in enumerate(lines) if line.startswith("[retry] flaky: overloaded (529); retrying")
    ]
    (finished,) = [i for i, line in enumerate(lines) if line.startswith("[1/1] flaky: completed")]
    assert len(retries) == 2 and max(retries) < finished, result.stderr  # each retry a line, as it happens
    assert ["attempt 2" in lines[retries[0]], "attempt 3" in lines[retries[1]]] == [True, True]
    assert "done at last" in result.stdout


async def test_run_shows_a_retry_while_the_task_is_still_retrying(fake_api: FakeApi, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"tasks": [{"label": "refused", "task": "[[fail:429;retry-after=0.2]]"}]}))
    argv = [str(SCRIPT), "run", str(plan), "--root", str(tmp_path)]
    async with running(argv, script_env(fake_api)) as process:
        assert process.stderr is not None
        seen = bytearray()
        with anyio.fail_after(30):
            await read_until(process.stderr, "[retry] refused: rate limited (429); retrying", seen)
            process.send_signal(signal.SIGINT)  # the task would retry until its timeout
            assert await process.wait() == 128 + signal.SIGINT


async def test_run_on_a_terminal_shows_a_live_table_and_the_retry_and_end_lines(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    task = {"label": "flaky", "task": "[[fail:529;count=1;retry-after=1]] [[reply:done]]"}
    plan.write_text(json.dumps({"tasks": [task], "synthesis": {"mode": "none"}}))
    terminal, stderr = pty.openpty()
    argv = [str(SCRIPT), "run", str(plan), "--root", str(tmp_path)]
    try:
        async with running(argv, script_env(fake_api) | {"COLUMNS": "200"}, stderr=stderr) as process:
            os.close(stderr)
            shown = bytearray()
            with anyio.fail_after(60):
                while b"[1/1] flaky: completed" not in shown:
                    await anyio.wait_readable(terminal)
                    shown += os.read(terminal, 65536)
                assert await process.wait() == 0
    finally:
        os.close(terminal)
    text = shown.decode(errors="replace")
    assert "[retry] flaky: overloaded (529); retrying in 1.0 s (attempt 2)" in text, text
    assert "tokens in/out" in text and "0/1 done, 1 running, 0 queued" in text, text  # the live table


def test_doctor_with_the_temporal_executor_says_whether_the_cluster_answers_and_how_many_workers_poll(
    fake_api: FakeApi, temporal_server: DevServer, tmp_path: Path
) -> None:
    env = script_env(fake_api)
    queue = ["--executor", "temporal", "--task-queue", f"doctor-{os.getpid()}"]
    done = run_script("doctor", *queue, "--temporal-address", temporal_server.address, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"executor: temporal at {temporal_server.address}, namespace default" in done.stdout
    assert "reachable, but no worker polls the task queue" in done.stdout
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{unused.getsockname()[1]}"
    done = run_script("doctor", *queue, "--temporal-address", closed, env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert f"cannot reach Temporal at {closed}" in done.stdout
    assert "executor: embedded" in run_script("doctor", env=env, cwd=tmp_path).stdout
