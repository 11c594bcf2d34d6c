"""Server settings: defaults, environment variables, and the checks that reject a bad value at start.

Every setting has an environment variable (``FANOUT_*``), a command-line flag (see ``tools/cli/main.py``)
and a key of the same name in the configuration file (``--config``, see ``file.py``), which also holds the
agent CLI commands. A flag beats the environment, which beats the file. ``OPTIONS`` is the single list
that both ``--help`` and the README are written from.

Why the layering is written here and not left to pydantic-settings (its CLI, environment and TOML/JSON
sources were tried in issue 11, with the flags and variables as each field's aliases; 22 of the 80 tests
of settings, the configuration file and the command line failed):

* A validation error names the field, never the source of the value: ``FANOUT_TASK_TIMEOUT=soon`` and
  ``--task-timeout soon`` both read ``task-timeout: ...``. Naming the flag, the variable or the file and
  its key takes the sources one at a time, which is what ``load_settings`` does.
* A field has one list of aliases for the command line and the environment alike: for the flag ``--root``
  and the variable ``FANOUT_ROOTS``, a variable named ``root`` is read too, and ``--FANOUT-ROOTS``
  becomes a flag. ``--help`` shows types as metavars (``tuple[Path,...]``), appends "(default: ...)" to
  help that already says it, and offers ``commands`` as a JSON flag.
* Its file sources skip a missing file without a word, report a syntax error without the file's name,
  take relative paths from the working directory rather than the file's, replace a preset command
  instead of changing only the keys given (so ``[commands.claude]`` without ``argv`` is refused), and
  answer an unknown key with "Extra inputs are not permitted", without the keys there are.
* Importing it imports asyncio, python-dotenv and importlib.metadata: ``fanout-mcp --version`` took
  0.40 s instead of 0.30 s (medians of 31 alternating runs), and the server pays the import before it
  answers ``initialize`` too, since it reads its settings before the greeter starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .commands import DEFAULTABLE, PRESETS, RESERVED, CommandSpec
from .distributed import DISTRIBUTED_OPTIONS, DistributedSettings
from .file import ConfigError, read_config
from .option import Option
from .pricing import PriceTable
from .problems import describe_problems
from .remote import REMOTE_OPTIONS, RemoteSettings
from .worktrees import WORKTREE_OPTIONS, WorktreeSettings, check_commands, comma_separated

DEFAULT_MODEL: Final = "claude-sonnet-5-5"
# Why 30 s: long enough to ride out a network, VPN or local gateway coming up alongside the server (two
# or three tries, one of them a full connect timeout), short enough that a wrong URL fails in well under a
# minute. It applies only before the endpoint's first answer (see backends/endpoint.py).
CONNECT_GRACE_S: Final = 30.0
_COMMAND_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def default_store() -> Path:
    """Where tasks are kept unless ``--store`` says otherwise: the platform's per-user state directory."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "fanout-mcp" / "tasks.db"


def default_roots() -> tuple[Path, ...]:
    """The working directory, unless it is the filesystem root or the home directory: clients such as
    Claude Desktop may start servers in ``/``, and reading the whole disk must be asked for, not given."""
    cwd = Path.cwd().resolve()
    if cwd == Path(cwd.anchor) or cwd == Path.home().resolve():
        return ()
    return (cwd,)


class Settings(RemoteSettings, WorktreeSettings, DistributedSettings):
    """Everything the engine (and ``serve``, ``remote.py``) can be configured with. Frozen once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    roots: tuple[Path, ...] = Field(default_factory=default_roots)
    model: Annotated[str, Field(min_length=1)] = DEFAULT_MODEL
    max_tokens: Annotated[int, Field(ge=1, le=128_000)] = 8_192
    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 1_000
    max_tasks_per_spawn: Annotated[int, Field(ge=1, le=100_000)] = 100
    max_unfinished: Annotated[int, Field(ge=1, le=1_000_000)] = 5_000
    max_queued_bytes: Annotated[int, Field(ge=1)] = 512 * 1024 * 1024
    task_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    default_wait_s: Annotated[float, Field(ge=0, le=3_600)] = 25.0
    max_wait_s: Annotated[float, Field(gt=0, le=3_600)] = 50.0
    progress_interval_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    max_output_chars: Annotated[int, Field(ge=1_000, le=10_000_000)] = 45_000
    retention_s: Annotated[float, Field(gt=0)] = 86_400.0
    max_finished: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000
    store: Annotated[str | None, Field(min_length=1)] = None  #: None: the per-user default file
    max_file_bytes: Annotated[int, Field(ge=1)] = 200_000
    max_task_file_bytes: Annotated[int, Field(ge=1)] = 1_000_000
    retry_cap_s: Annotated[float, Field(gt=0, le=3_600)] = 60.0
    connect_grace_s: Annotated[float, Field(gt=0, le=3_600)] = CONNECT_GRACE_S
    cache_min_tokens: Annotated[int, Field(ge=0)] = 1_024
    synthesis_max_tokens: Annotated[int, Field(ge=1, le=128_000)] = 16_000
    synthesis_input_chars: Annotated[int, Field(ge=1_000, le=10_000_000)] = 400_000
    prices_file: Path | None = None
    log_level: str = "WARNING"
    dashboard_port: Annotated[int | None, Field(ge=0, le=65_535)] = None  #: None: a stdio server has none
    config_file: Path | None = None
    commands: Mapping[str, CommandSpec] = Field(default_factory=lambda: dict(PRESETS))
    backend: Annotated[str, Field(min_length=1)] = "auto"  #: after commands: its check reads them
    worktree_setup: tuple[str, ...] = ()  #: after commands too

    @field_validator("worktree_setup", mode="before")
    @classmethod
    def _setup_listed(cls, value: Any) -> Any:
        return comma_separated(value)

    @field_validator("worktree_setup")
    @classmethod
    def _setup_configured(cls, names: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return check_commands(names, info.data.get("commands", PRESETS))

    @field_validator("roots")
    @classmethod
    def _roots_exist(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        resolved: list[Path] = []
        for root in roots:
            path = Path(root).expanduser()
            if not path.is_dir():
                raise ValueError(f"root {str(root)!r} is not an existing directory")
            resolved.append(path.resolve())
        return tuple(resolved)

    @field_validator("prices_file")
    @classmethod
    def _prices_readable(cls, path: Path | None) -> Path | None:
        if path is not None:
            PriceTable.load(path)  # raises ValueError naming the file and the entry
        return path

    @field_validator("commands")
    @classmethod
    def _command_names(cls, commands: Mapping[str, CommandSpec]) -> Mapping[str, CommandSpec]:
        for name in commands:
            if name in RESERVED or not _COMMAND_NAME.fullmatch(name):
                raise ValueError(
                    f"command name {name!r} must be lower-case letters, digits, '-' or '_' (up to 40) "
                    f"and none of {sorted(RESERVED)}"
                )
        return commands

    @field_validator("backend")
    @classmethod
    def _backend_exists(cls, backend: str, info: ValidationInfo) -> str:
        commands: Mapping[str, CommandSpec] = info.data.get("commands", PRESETS)
        known = {*DEFAULTABLE, *commands}
        if backend not in known:
            raise ValueError(f"backend {backend!r} is not one of {sorted(known)}")
        return backend

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        level = level.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


# The single list that the CLI's flags, ``--help`` and the README's configuration table come from.
OPTIONS: Final[Mapping[str, Option]] = {
    "roots": Option(
        "--root",
        "FANOUT_ROOTS",
        "directory whose files tasks may read; repeat the flag for "
        f"several (environment: separated by '{os.pathsep}'). Default: the working directory, unless "
        "that is / or the home directory (then no files can be read). Files outside every root are "
        "refused",
        metavar="DIR",
    ),
    "model": Option(
        "--model", "FANOUT_MODEL", f"default model for subagents (default: {DEFAULT_MODEL})", metavar="MODEL"
    ),
    "max_tokens": Option(
        "--max-tokens",
        "FANOUT_MAX_TOKENS",
        "default cap on a subagent's answer, in tokens (default: 8192)",
        metavar="TOKENS",
    ),
    "max_concurrency": Option(
        "--max-concurrency",
        "FANOUT_MAX_CONCURRENCY",
        "most tasks running at once, across all spawns (default: 1000, what an account of the Start "
        "tier allows a minute); requests to the Anthropic API follow what the account's rate-limit "
        "headers allow, up to this",
    ),
    "max_tasks_per_spawn": Option(
        "--max-tasks", "FANOUT_MAX_TASKS", "most tasks one spawn_parallel call may start (default: 100)"
    ),
    "max_unfinished": Option(
        "--max-unfinished",
        "FANOUT_MAX_UNFINISHED",
        "most queued+running tasks at once; further spawns are refused until some finish (default: 5000)",
    ),
    "max_queued_bytes": Option(
        "--max-queued-bytes",
        "FANOUT_MAX_QUEUED_BYTES",
        "most bytes of task text, shared context and file contents that unfinished tasks may hold; a "
        "spawn that would pass it is refused until some finish (default: 536870912, 512 MiB)",
        metavar="BYTES",
    ),
    "task_timeout_s": Option(
        "--task-timeout",
        "FANOUT_TASK_TIMEOUT",
        "default seconds a task may run, retries included (default: 600)",
        metavar="SECONDS",
    ),
    "default_wait_s": Option(
        "--default-wait",
        "FANOUT_DEFAULT_WAIT",
        "default wait_s of task_output and synthesize (default: 25)",
        metavar="SECONDS",
    ),
    "max_wait_s": Option(
        "--max-wait",
        "FANOUT_MAX_WAIT",
        "longest wait_s any call may wait, so that every call returns before the "
        "client's tool-call timeout (default: 50; many clients give up at 60)",
        metavar="SECONDS",
    ),
    "progress_interval_s": Option(
        "--progress-interval",
        "FANOUT_PROGRESS_INTERVAL",
        "seconds between progress notifications while a call waits (default: 10)",
        metavar="SECONDS",
    ),
    "max_output_chars": Option(
        "--max-output-chars",
        "FANOUT_MAX_OUTPUT_CHARS",
        "characters one task_output result holds at most, its text and structured content together; "
        "its tasks' outputs share what that leaves fairly, and the rest is paged (default: 45000: Claude "
        "Code saves a result over 50,000 characters to a file)",
        metavar="CHARS",
    ),
    "retention_s": Option(
        "--retention",
        "FANOUT_RETENTION",
        "seconds a finished task is kept, and an edit task's worktree and ref (default: 86400)",
        metavar="SECONDS",
    ),
    "max_finished": Option(
        "--max-finished",
        "FANOUT_MAX_FINISHED",
        "most finished tasks kept; the oldest are evicted first (default: 10000)",
    ),
    "store": Option(
        "--store",
        "FANOUT_STORE",
        "the SQLite file that keeps every task, shared by every server process that names it; 'memory' "
        "keeps tasks in this process only, until it exits (default: $XDG_STATE_HOME/fanout-mcp/tasks.db, "
        "~/.local/state/fanout-mcp/tasks.db without it)",
        metavar="PATH",
    ),
    "max_file_bytes": Option(
        "--max-file-bytes",
        "FANOUT_MAX_FILE_BYTES",
        "bytes of one file put in a prompt; longer files are cut, with a note (default: 200000)",
        metavar="BYTES",
    ),
    "max_task_file_bytes": Option(
        "--max-task-file-bytes",
        "FANOUT_MAX_TASK_FILE_BYTES",
        "bytes of all the files of one task (default: 1000000)",
        metavar="BYTES",
    ),
    "retry_cap_s": Option(
        "--retry-cap",
        "FANOUT_RETRY_CAP",
        "longest single back-off after a 429/529/5xx, even if the provider asks for more (default: 60)",
        metavar="SECONDS",
    ),
    "connect_grace_s": Option(
        "--connect-grace",
        "FANOUT_CONNECT_GRACE",
        "seconds the Messages API endpoint may refuse connections (or not resolve) before the tasks "
        "waiting on it fail, as long as it has not answered once since the server started; once it has, "
        "a drop is retried for each task's timeout (default: 30)",
        metavar="SECONDS",
    ),
    "cache_min_tokens": Option(
        "--cache-min-tokens",
        "FANOUT_CACHE_MIN_TOKENS",
        "estimated tokens of shared context from which one task warms the prompt "
        "cache before its siblings start (default: 1024)",
        metavar="TOKENS",
    ),
    "synthesis_max_tokens": Option(
        "--synthesis-max-tokens",
        "FANOUT_SYNTHESIS_MAX_TOKENS",
        "cap on a synthesis answer, in tokens (default: 16000)",
        metavar="TOKENS",
    ),
    "synthesis_input_chars": Option(
        "--synthesis-input-chars",
        "FANOUT_SYNTHESIS_INPUT_CHARS",
        "characters of answers one synthesis call reads; more are synthesised in groups, then merged "
        "(default: 400000)",
        metavar="CHARS",
    ),
    "prices_file": Option(
        "--prices",
        "FANOUT_PRICES",
        "JSON file of model prices (USD per million tokens) that extends the built-in table; see the README",
        metavar="FILE",
    ),
    "log_level": Option(
        "--log-level", "FANOUT_LOG_LEVEL", "log level on stderr (default: WARNING)", metavar="LEVEL"
    ),
    "backend": Option(
        "--backend",
        "FANOUT_BACKEND",
        "where tasks that name no backend run: auto (the Anthropic API if a key is set, else the claude "
        "CLI if it is on PATH), anthropic, batch (the Message Batches API: half price, results within "
        "24 h), or a command: claude, codex, or one from the configuration file (default: auto)",
        metavar="NAME",
    ),
    "dashboard_port": Option(
        "--dashboard-port",
        "FANOUT_DASHBOARD_PORT",
        "stdio: serve the live dashboard on this port of 127.0.0.1 (0: any free one; --dashboard is "
        "the same as 0); its link is logged on stderr (default: no dashboard; serve has it at /)",
    ),
    "config_file": Option(
        "--config",
        "FANOUT_CONFIG",
        "TOML or JSON file with settings (the same names as below, e.g. max_concurrency) and agent CLI "
        "commands ([commands.NAME]); see the README",
        metavar="FILE",
    ),
    **REMOTE_OPTIONS,
    **WORKTREE_OPTIONS,
    **DISTRIBUTED_OPTIONS,
}


class SettingsError(ValueError):
    """A setting could not be used; the message names the variable or flag and the problem."""


def load_settings(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the configuration file, then the environment, then ``overrides`` (flags).

    Raises:
        SettingsError: a value is malformed or out of range, or the configuration file is unusable.
    """
    environ = os.environ if environ is None else environ
    from_env: dict[str, Any] = {}
    for name, option in OPTIONS.items():
        raw = environ.get(option.env)
        if raw is None or raw == "":
            continue
        from_env[name] = [p for p in raw.split(os.pathsep) if p] if name == "roots" else raw
    from_flags = {k: v for k, v in overrides.items() if v is not None}
    config_path = from_flags.get("config_file") or from_env.get("config_file")
    from_file: dict[str, Any] = {}
    if config_path:
        try:
            from_file = read_config(Path(config_path), set(OPTIONS) - {"config_file"})
        except ConfigError as exc:
            raise SettingsError(str(exc)) from None
    sources = {**dict.fromkeys(from_file, "file"), **dict.fromkeys(from_env, "env")}
    sources |= dict.fromkeys(from_flags, "flag")
    try:
        return Settings(**{**from_file, **from_env, **from_flags})
    except ValidationError as exc:
        raise SettingsError(describe_problems(exc, sources, config_path, OPTIONS)) from None
