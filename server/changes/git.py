"""The border to the ``git`` program: one subprocess per call, run off the event loop.

Every call runs with a fixed identity and configuration of its own (no hooks, no signing, no pager, no
editor, no prompt for credentials), and without the variables that would point it at another
repository (``GIT_DIR``, ``GIT_WORK_TREE``, ``GIT_INDEX_FILE`` from the server's own environment: a
server started from inside a git hook must not act on that hook's repository). A failure comes back as
``GitFailed`` with git's own message; git missing altogether is ``BackendUnavailable``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from ..core.errors import BackendUnavailable, FanoutError

# Repository-selecting variables the server's environment may carry but no call of ours may inherit.
_DROPPED: Final = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR", "GIT_PREFIX"}
)
_IDENTITY: Final = {
    "GIT_AUTHOR_NAME": "fanout-mcp",
    "GIT_AUTHOR_EMAIL": "fanout-mcp@localhost",
    "GIT_COMMITTER_NAME": "fanout-mcp",
    "GIT_COMMITTER_EMAIL": "fanout-mcp@localhost",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "GIT_EDITOR": "true",
    "GIT_OPTIONAL_LOCKS": "0",  # a read (status, diff) never takes the index lock the user may need
}
# Hooks never run on the server's commits and worktrees, and nothing is signed.
_CONFIG: Final = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "core.quotePath=false",
)


class GitFailed(FanoutError):
    """A git command ended with a status it was not expected to."""

    def __init__(self, args: Sequence[str], status: int, stderr: str) -> None:
        said = stderr.strip().splitlines()
        super().__init__(
            f"`git {' '.join(args[:3])}` failed ({status}): {' / '.join(said[-3:]) or 'no message'}"
        )
        self.status = status
        self.stderr = stderr


@dataclass(frozen=True, slots=True)
class Done:
    status: int
    stdout: str
    stderr: str

    def line(self) -> str:
        """The first line of the output (an object id, a path)."""
        return self.stdout.split("\n", 1)[0].strip()


async def git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    ok: tuple[int, ...] = (0,),
) -> Done:
    """Run ``git -C cwd args`` to its end; its output, decoded (binary-safe: surrogate escapes).

    Raises:
        GitFailed: it ended with a status not in ``ok``.
        BackendUnavailable: there is no ``git`` to run.
    """
    status, stdout, stderr = await _run(cwd, args, env, stdin, ok)
    return Done(status, stdout.decode("utf-8", "surrogateescape"), stderr)


async def git_bytes(cwd: Path, *args: str) -> bytes:
    """The raw output of a git command that must succeed (a binary patch)."""
    _, stdout, _ = await _run(cwd, args, None, None, (0,))
    return stdout


async def _run(
    cwd: Path, args: Sequence[str], env: Mapping[str, str] | None, stdin: bytes | None, ok: tuple[int, ...]
) -> tuple[int, bytes, str]:
    full = ["git", *_CONFIG, "-C", str(cwd), *args]
    environment = {k: v for k, v in os.environ.items() if k not in _DROPPED} | _IDENTITY | dict(env or {})
    try:
        done = await anyio.run_process(full, input=stdin, env=environment, check=False)
    except FileNotFoundError:
        raise BackendUnavailable("edit tasks need git, and there is no `git` on the server's PATH") from None
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode not in ok:
        raise GitFailed(args, done.returncode, stderr)
    return done.returncode, done.stdout, stderr
