"""Agent CLIs the server may run as subagents: the built-in presets and the operator's own commands.

Only commands defined here or in the operator's configuration file ever run: the calling model picks
one by name (a task's ``backend``), never an argv. A command is an argv template plus how to read its
output:

* ``{prompt}`` in ``argv`` puts the prompt there as one argument; without it the prompt goes to stdin.
* ``model_args`` are appended only when the task (or the command) names a model, with ``{model}``
  replaced, so that a CLI without a model falls back to its own default.
* ``output`` says how stdout becomes the answer: ``text`` (all of it), ``json`` (one JSON document;
  ``field`` is a dotted path to the answer), ``jsonl`` (one JSON object a line; the answer is ``field`` of
  the last line that has it), or ``claude`` / ``codex`` (those CLIs' own formats, with usage and cost:
  ``claude -p --output-format stream-json --verbose``, or its single ``json`` result; ``codex exec --json``).
  All but ``json`` stream into the task's partial output as they arrive.
* The environment holds only the server's harmless variables (PATH, HOME, the user, the locale, the
  terminal, temporary directories, proxies whose URL has no credentials, CA certificates: see
  ``backends/cli.py``), plus the names in ``pass_env``, plus ``env``. An API key or a token reaches a
  command only if its configuration names it.
* ``user`` (a name or a uid) runs the command as that user, with that user's group and no supplementary
  groups: only a server running as root may name a user other than its own.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

OutputFormat = Literal["text", "json", "jsonl", "claude", "codex"]

PROMPT: Final = "{prompt}"
MODEL: Final = "{model}"


class CommandSpec(BaseModel):
    """One runnable agent CLI (a preset or the operator's own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    argv: Annotated[tuple[str, ...], Field(min_length=1)]
    #: the argv of an edit task, run in its own worktree (None: ``argv``); the prompt goes where argv's does
    edit_argv: Annotated[tuple[str, ...] | None, Field(min_length=1)] = None
    model_args: tuple[str, ...] = ()
    output: OutputFormat = "text"
    field: Annotated[str, Field(min_length=1)] = "result"
    env: Annotated[Mapping[str, str], Field(repr=False)] = {}  #: may hold a key: never in a repr or a log
    pass_env: tuple[str, ...] = ()
    cwd: Path | None = None  #: default: the server's first root
    model: str | None = None  #: used when a task names none
    max_concurrency: Annotated[int, Field(ge=1, le=1_000)] = 4  #: these are whole agents: heavy processes
    grace_s: Annotated[float, Field(ge=0, le=60)] = 2.0  #: between SIGTERM and SIGKILL on cancel
    timeout_s: Annotated[float | None, Field(gt=0, le=86_400)] = None  #: a task's default; else the server's
    install_hint: str = ""  #: what to do when the executable is missing (presets set it)
    user: str | int | None = None  #: run as this user (name or uid); default: the server's own user

    @field_validator("argv")
    @classmethod
    def _has_program(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        return _checked_argv(argv)

    @field_validator("edit_argv")
    @classmethod
    def _edit_prompt_in_place(
        cls, edit_argv: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        argv: tuple[str, ...] | None = info.data.get("argv")
        if edit_argv is None or argv is None:
            return edit_argv
        _checked_argv(edit_argv)
        if any(PROMPT in arg for arg in argv) != any(PROMPT in arg for arg in edit_argv):
            raise ValueError("edit_argv must take the prompt where argv does: both with {prompt}, or neither")
        return edit_argv

    @field_validator("cwd")
    @classmethod
    def _cwd_exists(cls, cwd: Path | None) -> Path | None:
        if cwd is None:
            return None
        path = cwd.expanduser()
        if not path.is_dir():
            raise ValueError(f"cwd {str(cwd)!r} is not an existing directory")
        return path.resolve()

    @field_validator("model_args")
    @classmethod
    def _model_has_a_place(cls, model_args: tuple[str, ...]) -> tuple[str, ...]:
        # A field's own check: a model-wide one's error would show every input, ``env`` values included.
        if model_args and not any(MODEL in arg for arg in model_args):
            raise ValueError("model_args must contain {model}")
        return model_args

    @field_validator("user")
    @classmethod
    def _user_is_allowed(cls, user: str | int | None) -> str | int | None:
        if user is not None:
            uid, _ = _identity(user)
            if uid != os.geteuid() and os.geteuid() != 0:
                raise ValueError(
                    f"the server runs as uid {os.geteuid()}, not as root, so it cannot run a command as "
                    f"another user ({user!r}): remove user, or run the server as root"
                )
        return user

    @property
    def run_as(self) -> tuple[int, int] | None:
        """The uid and gid to run as, or None to run as the server's own user."""
        if self.user is None:
            return None
        uid, gid = _identity(self.user)
        return None if uid == os.geteuid() else (uid, gid)

    @property
    def program(self) -> str:
        return self.argv[0]

    @property
    def prompt_on_stdin(self) -> bool:
        return not any(PROMPT in arg for arg in self.argv)


def _checked_argv(argv: tuple[str, ...]) -> tuple[str, ...]:
    if not argv[0].strip():
        raise ValueError("argv[0] must name the program to run")
    if MODEL in " ".join(argv):
        raise ValueError("put {model} in model_args, not argv: it is only added when a model is set")
    if sum(arg.count(PROMPT) for arg in argv) > 1:
        raise ValueError("{prompt} may appear once in argv")
    return argv


def _identity(user: str | int) -> tuple[int, int]:
    """A user's uid and primary gid; a uid with no account has the group of the same number."""
    try:
        entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(str(user))
    except KeyError:
        if str(user).isdigit():
            return int(user), int(user)
        raise ValueError(f"no user named {user!r} on this system") from None
    return entry.pw_uid, entry.pw_gid


# Read-only by default: Claude Code may look around the working directory but not change it or run
# commands (in print mode a tool it is not allowed is refused, never asked about).
_CLAUDE_READ_ONLY = (
    "--allowedTools",
    "Read,Grep,Glob",
    "--disallowedTools",
    "Bash,Edit,MultiEdit,Write,NotebookEdit",
)

# An edit task: Claude Code may read and change files in its worktree (its working directory, and no
# directory added) and nothing else: no shell, so no git (the server commits), no web. dontAsk refuses
# whatever was not allowed instead of asking.
_CLAUDE_EDIT = (
    *("--permission-mode", "dontAsk", "--tools", "Read,Edit,Write,Glob,Grep"),
    *("--allowedTools", "Read,Edit,Write,Glob,Grep"),
    *("--disallowedTools", "Bash,NotebookEdit,WebFetch,WebSearch,Agent"),
)
_CLAUDE = ("claude", "-p", "--output-format", "stream-json", "--verbose")

PRESETS: Final[Mapping[str, CommandSpec]] = {
    "claude": CommandSpec(
        argv=(*_CLAUDE, *_CLAUDE_READ_ONLY),
        edit_argv=(*_CLAUDE, *_CLAUDE_EDIT),
        model_args=("--model", MODEL),
        output="claude",
        install_hint="install Claude Code (npm install -g @anthropic-ai/claude-code) and run `claude` once "
        "to log in",
    ),
    "codex": CommandSpec(
        argv=("codex", "exec", "--json", "--sandbox", "read-only", "--skip-git-repo-check", "-"),
        # Writes only in its working directory (the worktree), network off.
        edit_argv=(
            *("codex", "exec", "--json", "--sandbox", "workspace-write"),
            *("-c", "sandbox_workspace_write.network_access=false", "--skip-git-repo-check", "-"),
        ),
        model_args=("--model", MODEL),
        output="codex",
        install_hint="install the Codex CLI (npm install -g @openai/codex) and run `codex login`",
    ),
}

# Names a command may not take: they mean something else in a task's ``backend`` (``api`` and ``cli`` are
# aliases of anthropic and claude).
RESERVED: Final = frozenset({"auto", "anthropic", "api", "cli", "batch", "sampling"})
# What the server's default backend may be, besides a command: sampling needs a client, so never.
DEFAULTABLE: Final = RESERVED - {"sampling"}


def command_from_config(name: str, raw: Mapping[str, object]) -> CommandSpec:
    """A command from the configuration file; for a preset's name, the keys given replace the preset's.

    Raises:
        pydantic.ValidationError: a key is unknown or a value is wrong.
    """
    base: dict[str, object] = PRESETS[name].model_dump() if name in PRESETS else {}
    return CommandSpec.model_validate({**base, **raw})
