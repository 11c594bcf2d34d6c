"""Starting an agent CLI, and ending it with everything it started.

On Linux a command runs under ``supervisor.py``, which leads a new process group: when the command exits,
or the server asks it (SIGTERM) or dies (even of SIGKILL), the supervisor ends every descendant, those
that left the group (``setsid``) or were orphaned included, and reaps them. The server then signals only
the supervisor, and SIGKILLs the group only as a last resort. Elsewhere the command itself leads the
group, which is ended the same way; a descendant that left it, or the command of a server killed with
SIGKILL, is not ended.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Final

import anyio
from anyio.abc import Process

logger = logging.getLogger(__name__)

SUPERVISED: Final = sys.platform.startswith("linux")
_SUPERVISOR: Final = Path(__file__).with_name("supervisor.py")
# How long past the command's grace the supervisor may take to kill and reap what is left.
_SUPERVISOR_SLACK_S: Final = 1.0


@contextlib.asynccontextmanager
async def spawned(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    grace_s: float,
    with_stdin: bool,
    run_as: tuple[int, int] | None = None,
) -> AsyncGenerator[Process, None]:
    """The command, running as ``run_as`` (uid, gid; no supplementary groups) if given, with its stdout and
    stderr piped (and its stdin, if ``with_stdin``). However the block exits, the command and everything
    it started get SIGTERM, then SIGKILL after ``grace_s``, and are reaped.

    Raises:
        OSError: the command could not be started (its program is missing or not executable, its argv is
            too long, ``cwd`` cannot be entered).
    """
    process, report = await _open(
        argv, cwd=cwd, env=env, grace_s=grace_s, with_stdin=with_stdin, run_as=run_as
    )
    try:
        try:
            await _started(report)
        finally:
            if report is not None:
                os.close(report)
        yield process
    finally:
        with anyio.CancelScope(shield=True):
            await _end(process, grace_s)


def signal_group(group: int, signum: signal.Signals) -> None:
    """Send ``signum`` to the process group, if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


async def _open(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    grace_s: float,
    with_stdin: bool,
    run_as: tuple[int, int] | None,
) -> tuple[Process, int | None]:
    """The process started (the supervisor, else the command), and the pipe the supervisor says on whether
    the command started (None when unsupervised)."""
    read_end, write_end = os.pipe() if SUPERVISED else (None, None)
    supervisor = [] if write_end is None else _supervisor_argv(write_end, grace_s, run_as)
    # The supervisor stays the server's user (so that it can always end what the command starts) and
    # starts the command as ``run_as``; unsupervised, the command is started so directly.
    uid, gid = (None, None) if run_as is None or SUPERVISED else run_as
    try:
        # On the event loop's thread, never a worker thread: the kernel's "parent died" signal comes when
        # the *thread* that started the supervisor ends.
        process = await anyio.open_process(
            [*supervisor, *argv],
            stdin=PIPE if with_stdin else DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            pass_fds=() if write_end is None else (write_end,),
            user=uid,
            group=gid,
            extra_groups=None if uid is None else (),
        )
    except BaseException:
        if read_end is not None:
            os.close(read_end)
        raise
    finally:
        if write_end is not None:
            os.close(write_end)  # the supervisor holds its own copy: its closing is the EOF we wait for
    return process, read_end


def _supervisor_argv(report: int, grace_s: float, run_as: tuple[int, int] | None) -> list[str]:
    uid, gid = run_as or (-1, -1)
    here = [str(os.getpid()), str(report), str(uid), str(gid), repr(grace_s)]
    return [sys.executable, "-I", "-S", str(_SUPERVISOR), *here]


async def _started(report: int | None) -> None:
    """Return once the supervisor has started the command; raise its ``OSError`` if it could not."""
    if report is None:
        return
    await anyio.wait_readable(report)
    said = os.read(report, 65536).decode(errors="replace")
    if said:
        number, _, filename = said.partition("\n")
        code = int(number) if number.isdigit() else errno.EIO
        raise OSError(code, os.strerror(code), filename)


async def _end(process: Process, grace_s: float) -> None:
    """Ask the supervisor (else the group) to end, SIGKILL the group if it has not after the grace, reap."""
    if process.returncode is None:
        if SUPERVISED:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        else:
            signal_group(process.pid, signal.SIGTERM)
        with anyio.move_on_after(grace_s + (_SUPERVISOR_SLACK_S if SUPERVISED else 0.0)):
            await process.wait()
        if process.returncode is None:
            if SUPERVISED:
                logger.warning("a command's supervisor did not end in time: killing its process group")
            signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    # Always, once more: whatever is still in the group (it ignored SIGTERM, or outlived the leader).
    signal_group(process.pid, signal.SIGKILL)
    await process.aclose()
