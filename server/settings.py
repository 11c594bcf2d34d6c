"""Server settings: defaults, environment variables, and the checks that reject a bad value at start.

Every setting has an environment variable (``FANOUT_*``) and a command-line flag (see ``tools/cli.py``);
the flag wins. ``OPTIONS`` is the single list that both ``--help`` and the README are written from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fanout_mcp.server.pricing import PriceTable

DEFAULT_MODEL: Final = "claude-sonnet-5-5"


def default_roots() -> tuple[Path, ...]:
    """The working directory, unless it is the filesystem root or the home directory: clients such as
    Claude Desktop may start servers in ``/``, and reading the whole disk must be asked for, not given."""
    cwd = Path.cwd().resolve()
    if cwd == Path(cwd.anchor) or cwd == Path.home().resolve():
        return ()
    return (cwd,)


class Settings(BaseModel):
    """Everything the engine can be configured with. Frozen once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    roots: tuple[Path, ...] = Field(default_factory=default_roots)
    model: Annotated[str, Field(min_length=1)] = DEFAULT_MODEL
    max_tokens: Annotated[int, Field(ge=1, le=128_000)] = 8_192
    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 20
    max_tasks_per_spawn: Annotated[int, Field(ge=1, le=100_000)] = 100
    max_unfinished: Annotated[int, Field(ge=1, le=1_000_000)] = 5_000
    task_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    default_wait_s: Annotated[float, Field(ge=0, le=3_600)] = 25.0
    max_wait_s: Annotated[float, Field(gt=0, le=3_600)] = 50.0
    progress_interval_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    max_output_chars: Annotated[int, Field(ge=1_000, le=10_000_000)] = 40_000
    retention_s: Annotated[float, Field(gt=0)] = 86_400.0
    max_finished: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000
    max_file_bytes: Annotated[int, Field(ge=1)] = 200_000
    max_task_file_bytes: Annotated[int, Field(ge=1)] = 1_000_000
    retry_cap_s: Annotated[float, Field(gt=0, le=3_600)] = 60.0
    cache_min_tokens: Annotated[int, Field(ge=0)] = 1_024
    synthesis_max_tokens: Annotated[int, Field(ge=1, le=128_000)] = 16_000
    synthesis_input_chars: Annotated[int, Field(ge=1_000, le=10_000_000)] = 400_000
    prices_file: Path | None = None
    log_level: str = "WARNING"

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

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        level = level.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is given on the command line and in the environment."""

    flag: str
    env: str
    help: str
    metavar: str = "N"


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
        "tasks running at once, across all spawns (default: 20)",
    ),
    "max_tasks_per_spawn": Option(
        "--max-tasks", "FANOUT_MAX_TASKS", "most tasks one spawn_parallel call may start (default: 100)"
    ),
    "max_unfinished": Option(
        "--max-unfinished",
        "FANOUT_MAX_UNFINISHED",
        "most queued+running tasks at once; further spawns are refused until some finish (default: 5000)",
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
        "characters of output one task_output call returns in all, shared fairly among its tasks; the "
        "rest is paged (default: 40000; clients save or cut larger results)",
        metavar="CHARS",
    ),
    "retention_s": Option(
        "--retention",
        "FANOUT_RETENTION",
        "seconds a finished task is kept (default: 86400)",
        metavar="SECONDS",
    ),
    "max_finished": Option(
        "--max-finished",
        "FANOUT_MAX_FINISHED",
        "most finished tasks kept; the oldest are evicted first (default: 10000)",
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
}


class SettingsError(ValueError):
    """A setting could not be used; the message names the variable or flag and the problem."""


def load_settings(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment, then ``overrides`` (command-line flags, plan files).

    Raises:
        SettingsError: a value is malformed or out of range.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, option in OPTIONS.items():
        raw = environ.get(option.env)
        if raw is None or raw == "":
            continue
        values[name] = [p for p in raw.split(os.pathsep) if p] if name == "roots" else raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, overrides)) from None


def _describe(exc: ValidationError, overrides: Mapping[str, Any]) -> str:
    problems: list[str] = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "settings"
        option = OPTIONS.get(name)
        source = name
        if option is not None:
            source = option.flag if overrides.get(name) is not None else option.env
        problems.append(f"{source}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration: " + "; ".join(problems)
