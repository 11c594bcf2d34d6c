"""Configured commands run in an edit task's worktree: its setup commands before the agent starts, its
verify commands after its change set is committed.

Only configured commands run (``config/worktrees.py`` says which a setup or a verify may name), each with
its argv as it is, nothing on stdin, its configured environment, user and grace, and in the worktree;
however it ends, it ends with everything it started (``backends/spawn.py``). What it printed is kept as
a tail: the end of a test run is where it says what failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import anyio

from ..backends.cli import CommandBackend
from ..backends.formats import Tail
from ..config.commands import CommandSpec
from ..core.errors import TaskFailure
from ..core.state import ErrorKind
from .models import CheckResult

TAIL_CHARS: Final = 2_000
# What a task keeps of its time after its verify commands: a command cut off is ended (its grace, then a
# kill), and the task still ends with its answer rather than timing out.
_RESERVE_S: Final = 2.0


async def run_setup(commands: Mapping[str, CommandSpec], names: Sequence[str], worktree: Path) -> None:
    """Run each setup command in turn; the first that fails fails the task.

    Raises:
        TaskFailure: one exited with an error (its exit code and the tail of its output said), or could
            not be started.
    """
    for name in names:
        output = Tail(TAIL_CHARS)
        status = await _run(commands, name, worktree, output)
        if status != 0:
            raise TaskFailure(
                ErrorKind.COMMAND_FAILED,
                f"the worktree's setup command {name!r} failed with exit code {status}, before the agent "
                f"started; the end of its output:\n{output.text}",
            )


async def run_verify(
    commands: Mapping[str, CommandSpec], names: Sequence[str], worktree: Path
) -> list[CheckResult]:
    """Run each verify command in turn, within the task's time: one cut off by it (and those after it)
    has no exit code."""
    results: list[CheckResult] = []
    for name in names:
        output = Tail(TAIL_CHARS)
        status: int | None = None
        with anyio.CancelScope(
            deadline=anyio.current_effective_deadline() - _RESERVE_S - commands[name].grace_s
        ):
            try:
                status = await _run(commands, name, worktree, output)
            except TaskFailure as failure:
                output.feed(failure.message.encode())
        results.append(CheckResult(name=name, exit_code=status, output=output.text))
    return results


async def _run(commands: Mapping[str, CommandSpec], name: str, worktree: Path, output: Tail) -> int:
    return await CommandBackend(name, commands[name], ()).run_check(worktree, output)
