"""Subagents as agent CLIs (Claude Code, Codex, or the operator's own command), one subprocess per task.

A task runs its command once: an agent CLI retries on its own, and a second run could repeat its side
effects. The prompt goes in as an argument or on stdin; stdout is read as it arrives (the first
``MAX_OUTPUT_BYTES`` kept, the rest drained and dropped so that the CLI never blocks) and becomes the
answer as ``CommandSpec.output`` says. The CLI runs with only the harmless part of the server's
environment plus what its configuration names, as its configured ``user`` if any. However ``run`` ends
(an answer, a failure, a cancellation or a timeout), the CLI and everything it started are terminated,
killed after ``grace_s`` if need be, and reaped (see ``spawn.py``). OS errors become ``TaskFailure``
here and nowhere else.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import re
import shutil
import signal
import tempfile
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process, TaskGroup

from ..config.commands import MODEL, PROMPT, CommandSpec
from ..core.errors import TaskFailure
from ..core.models import SubagentRequest, SubagentResult
from ..core.state import ErrorKind
from . import Backend, TaskSink, Traits
from .formats import FORMATS, STDERR_TAIL_CHARS, Outcome, Stdout, Tail
from .spawn import signal_group, spawned

logger = logging.getLogger(__name__)

# What every command gets of the server's environment: where things are, the user, the locale, the
# terminal, and how to reach the network (proxies, extra CA certificates), plus where the preset CLIs keep
# their login when it is not under HOME. Nothing else passes unless a command's ``pass_env`` names it: an
# allowlist, because secrets come in too many shapes (DATABASE_URL, SENTRY_DSN, MYSQL_PWD ...) to spot.
_PASSED: Final = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "COLORTERM", "TZ"),
        *("TMPDIR", "TMP", "TEMP"),
        *("SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
        *("CLAUDE_CONFIG_DIR", "CODEX_HOME"),
    }
)
_PASSED_PREFIXES: Final = ("LC_", "XDG_")
# Passed in either case, unless the URL carries credentials (user:password@): those are a secret too.
_PROXIES: Final = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"})
_VERSION_TIMEOUT_S: Final = 10.0
_DRAIN_AFTER_EXIT_S: Final = 2.0  #: how long the pipes may stay open once the CLI and its group are gone


class CommandBackend(Backend):
    """Runs each subagent as one run of an agent CLI."""

    def __init__(self, name: str, spec: CommandSpec, roots: tuple[Path, ...]) -> None:
        self._name = name
        self._spec = spec
        self._roots = roots
        # caches_prompts False: every run is a fresh process, so warming a shared prefix first gains
        # nothing; offers_tools False: an agent CLI looks around its working directory itself.
        self._traits = Traits(
            runs_in_directory=True,
            default_timeout_s=spec.timeout_s,
            max_concurrency=spec.max_concurrency,
            edits=True,
        )
        self._warned_proxy = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def traits(self) -> Traits:
        return self._traits

    @property
    def program(self) -> str:
        return self._spec.program

    @property
    def install_hint(self) -> str:
        """What to do to install (or update) it; "" for a command without a hint."""
        return self._spec.install_hint

    def model_for(self, asked: str | None, server_default: str) -> str:
        """The task's own model, else the command's, else "" (the CLI's choice). Never the server's
        default: that names an API model, which another vendor's CLI would not know."""
        return asked or self._spec.model or ""

    def unavailable_reason(self) -> str | None:
        if shutil.which(self._spec.program) is not None:  # looked up on each call: PATH may change
            return None
        return _not_found(self._spec)

    async def version(self) -> str | None:
        """The first line ``<program> --version`` prints, or None if that fails. Spends no tokens."""
        lines = (await self._probe([self._spec.program, "--version"]) or "").strip().splitlines()
        return lines[0].strip() if lines else None

    async def unknown_flags(self) -> list[str] | None:
        """The long flags this command passes that its ``--help`` does not list (a CLI too old for
        them), or None when the help cannot be read. Spends no tokens.

        The help asked for is the program's, or its subcommand's (``codex exec --help``): the words of
        ``argv`` before the first option."""
        words = list(
            itertools.takewhile(lambda arg: not arg.startswith("-") and PROMPT not in arg, self._spec.argv)
        )
        text = await self._probe([*words, "--help"])
        if text is None or not text.strip():
            return None
        flags = [arg.split("=", 1)[0] for arg in (*self._spec.argv, *self._spec.model_args)]
        flags = [flag for flag in dict.fromkeys(flags) if flag.startswith("--") and PROMPT not in flag]
        return [flag for flag in flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]

    async def _probe(self, argv: list[str]) -> str | None:
        """What ``argv`` prints (no prompt, no tokens spent), or None if it fails or hangs."""
        try:
            with anyio.fail_after(_VERSION_TIMEOUT_S):
                outcome = await self._execute(argv, None, Stdout())
        except (TimeoutError, TaskFailure):
            return None
        return outcome.stdout if outcome.status == 0 else None

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        model = request.model or self._spec.model  # "" from the registry: the command's model, or the CLI's
        prompt = _prompt_text(request)
        reading = FORMATS[self._spec.output](sink, model or self._name, self._spec.field)
        stdout = Stdout(reading.take, reading.line if reading.reads_lines else None)
        stdin = prompt.encode() if self._spec.prompt_on_stdin else None
        try:
            argv = _argv(self._spec, prompt, model, edit=request.edit)
            outcome = await self._execute(argv, stdin, stdout, reading.process_started, request.cwd)
            return reading.result(outcome)
        finally:
            reading.settle()  # killed, timed out or failed before its usage: the cost is unknown, not $0

    async def _execute(
        self,
        argv: list[str],
        stdin: bytes | None,
        stdout: Stdout,
        started: Callable[[], None] | None = None,
        cwd: Path | None = None,
    ) -> Outcome:
        stderr = Tail(STDERR_TAIL_CHARS)
        with self._workdir(cwd) as workdir:
            env = self._child_env()
            async with _spawned(argv, workdir, env, self._spec, with_stdin=stdin is not None) as process:
                if started is not None:
                    started()
                status = await _communicate(process, stdin, stdout.feed, stderr.feed)
        text = stdout.close()
        return Outcome(self._spec.program, status, text, stdout.cut, stderr.text, stdout.long_lines)

    async def run_check(self, cwd: Path, output: Tail) -> int:
        """Run the command's argv as it is (no prompt, no model, nothing on stdin) in ``cwd``, as a setup
        or verify command of an edit task's worktree; its stdout and stderr go to ``output`` as they come.
        Its exit status (negative: killed by that signal).

        Raises:
            TaskFailure: it could not be started.
        """
        env = self._child_env()
        async with _spawned(list(self._spec.argv), cwd, env, self._spec, with_stdin=False) as process:
            return await _communicate(process, None, output.feed, output.feed)

    def withheld(self, prefixes: tuple[str, ...]) -> list[str]:
        """The names (never the values) of the server's variables that start with one of ``prefixes``
        and do not reach this command: a CLI set up through them (Claude Code on Bedrock, say) would
        fail without them, so ``doctor`` names them."""
        env, _ = _harmless_env(os.environ)
        passed = env.keys() | set(self._spec.pass_env) | self._spec.env.keys()
        return sorted(name for name in os.environ if name.startswith(prefixes) and name not in passed)

    def _child_env(self) -> dict[str, str]:
        """The harmless part of the server's environment, plus ``pass_env``, plus ``env``. Never log it."""
        env, withheld = _harmless_env(os.environ)
        env.update({name: os.environ[name] for name in self._spec.pass_env if name in os.environ})
        env.update(self._spec.env)
        withheld = [name for name in withheld if name not in env]
        if withheld and not self._warned_proxy:
            self._warned_proxy = True
            logger.warning(
                "%s carries credentials, so it is not passed to `%s`; name it in the command's pass_env "
                "to pass it",
                " and ".join(withheld),
                self._spec.program,
            )
        return env

    @contextlib.contextmanager
    def _workdir(self, asked: Path | None) -> Generator[Path, None, None]:
        """The task's cwd, else the command's, else the first root, else a private directory for this run
        only: never wherever the server happened to start (``/`` or the home directory)."""
        chosen = asked or self._spec.cwd or (self._roots[0] if self._roots else None)
        if chosen is not None:
            yield chosen
            return
        with tempfile.TemporaryDirectory(prefix="fanout-cli-", ignore_cleanup_errors=True) as scratch:
            if self._spec.run_as is not None:  # the command's user must be able to work in it
                os.chown(scratch, *self._spec.run_as)
            yield Path(scratch)


# --- the process --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _spawned(
    argv: list[str], cwd: Path, env: dict[str, str], spec: CommandSpec, *, with_stdin: bool
) -> AsyncGenerator[Process, None]:
    """The CLI and all it starts, ended and reaped however the block exits (see ``spawn.py``)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            process = await stack.enter_async_context(
                spawned(
                    argv, cwd=cwd, env=env, grace_s=spec.grace_s, with_stdin=with_stdin, run_as=spec.run_as
                )
            )
        except OSError as exc:
            raise _start_failure(exc, spec, cwd) from exc
        yield process


async def _communicate(
    process: Process, stdin: bytes | None, stdout: Callable[[bytes], None], stderr: Callable[[bytes], None]
) -> int:
    """Feed stdin and drain both pipes at once (so neither side can block the other); return the exit
    status once the output is read."""
    async with anyio.create_task_group() as group:
        if stdin is not None:
            group.start_soon(_write, process.stdin, stdin)
        out_done = _start_pump(group, process.stdout, stdout)
        err_done = _start_pump(group, process.stderr, stderr)
        await process.wait()
        # The supervisor has ended all the CLI left running; without one, a child left running would hold
        # the pipes open: end the group so they reach EOF, and bound the rest in case something escaped
        # the group (setsid) with a pipe.
        signal_group(process.pid, signal.SIGKILL)
        with anyio.move_on_after(_DRAIN_AFTER_EXIT_S):
            await out_done.wait()
            await err_done.wait()
        group.cancel_scope.cancel()
    return await process.wait()  # it has exited: this is its status at once


async def _write(stream: ByteSendStream | None, data: bytes) -> None:
    if stream is None:
        return
    try:
        await stream.send(data)
        await stream.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # the CLI exited without reading it all: its exit status says how it went


def _start_pump(
    group: TaskGroup, stream: ByteReceiveStream | None, feed: Callable[[bytes], None]
) -> anyio.Event:
    done = anyio.Event()

    async def pump() -> None:
        try:
            if stream is not None:
                async for chunk in stream:
                    feed(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # a broken pipe ends the output like EOF; the exit status says whether the CLI did well
        finally:
            done.set()

    group.start_soon(pump)
    return done


def _harmless_env(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The variables of ``environ`` every command may see, and the names of proxies withheld for the
    credentials in their URL."""
    env: dict[str, str] = {}
    withheld: list[str] = []
    for name, value in environ.items():
        if name.upper() in _PROXIES:
            if "@" in value:  # scheme://user:password@host: the proxy's password
                withheld.append(name)
            else:
                env[name] = value
        elif name in _PASSED or name.startswith(_PASSED_PREFIXES):
            env[name] = value
    return env, withheld


def _prompt_text(request: SubagentRequest) -> str:
    text = f"{request.system}\n\n{request.prompt}" if request.system else request.prompt
    if request.follow_up is not None:
        previous, feedback = request.follow_up
        text += f"\n\nYour previous answer was:\n{previous}\n\n{feedback}"
    return text


def _argv(spec: CommandSpec, prompt: str, model: str | None, *, edit: bool = False) -> list[str]:
    template = spec.edit_argv if edit and spec.edit_argv is not None else spec.argv
    argv = [arg.replace(PROMPT, prompt) for arg in template]
    if model:  # without one the CLI uses its own default model
        argv += [arg.replace(MODEL, model) for arg in spec.model_args]
    return argv


def _not_found(spec: CommandSpec) -> str:
    hint = spec.install_hint or "install it, or give its full path as the first word of the command's argv"
    return (
        f"the `{spec.program}` command is not on the server's PATH (or is not executable): {hint}. If it is "
        "installed, the MCP client may start the server with a shorter PATH than your shell's: put its "
        'directory on PATH in the "env" block of the server\'s entry, then restart the server.'
    )


def _start_failure(exc: OSError, spec: CommandSpec, cwd: Path) -> TaskFailure:
    if exc.errno == errno.E2BIG:
        return TaskFailure(
            ErrorKind.INVALID_INPUT,
            f"the prompt is too long to pass to `{spec.program}` as an argument. Send fewer or smaller "
            "files, or have the command read its prompt from stdin (no {prompt} in its argv).",
        )
    if exc.filename is not None and str(exc.filename) == str(cwd):
        return TaskFailure(ErrorKind.COMMAND_FAILED, f"cannot run `{spec.program}` in {cwd}: {exc.strerror}")
    if isinstance(exc, FileNotFoundError | PermissionError):
        return TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, _not_found(spec))
    return TaskFailure(ErrorKind.COMMAND_FAILED, f"`{spec.program}` could not be started: {exc}")
