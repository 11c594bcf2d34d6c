"""Runs one agent CLI and makes sure nothing it started outlives it: ``python -I -S supervisor.py PARENT
REPORT_FD UID GID GRACE_S PROGRAM [ARG ...]``. Linux only. Standard library only: it runs isolated
(``-I -S``), without the package or its dependencies on the path.

The server starts this script for every CLI task (see ``spawn.py``); it

* asks the kernel for SIGTERM when its parent (the server) dies, even of SIGKILL, and checks that the
  parent is still ``PARENT`` (it may have died before the request took effect);
* becomes a child subreaper, so that a descendant orphaned by its parent's exit, a double fork or a
  ``setsid`` is re-parented to it instead of to init: every process the command starts stays in its tree;
* starts the command with its own stdin, stdout and stderr (the server's pipes), as user ``UID`` and
  group ``GID`` with no supplementary groups unless they are -1 (it stays the server's user itself, so
  that it can always run and end what the command starts), then lets go of its copies of the pipes, so
  that the server still sees EOF when the command's side closes;
* has a command that cannot be started write why (its errno and file name) on ``REPORT_FD``, and exits
  127; otherwise ``REPORT_FD`` closes unwritten as the command execs, which tells the server it runs;
* when the command exits, or on SIGTERM (from the server, or the kernel as the server dies): sends
  SIGTERM to every descendant, SIGKILL after ``GRACE_S`` to whatever is left, reaps them all;
* exits as the command did: the same status, or killed by the same signal.

Its signals are blocked and taken with ``sigwaitinfo``, so none can interrupt it half-way; the command
starts with an empty signal mask and SIGPIPE at its default, as ``subprocess`` would start it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
import time
from typing import Final, NoReturn

PR_SET_PDEATHSIG: Final = 1
PR_SET_DUMPABLE: Final = 4
PR_SET_CHILD_SUBREAPER: Final = 36

_WATCHED: Final = frozenset({signal.SIGCHLD, signal.SIGTERM})
# Descendants other than its children die without a signal to it: while it waits for them, it looks again
# at least this often.
_POLL_S: Final = 0.05
NOT_STARTED: Final = 127  #: its status when the command could not be started (as a shell says it)


def prctl(option: int, value: int) -> bool:
    """Linux's ``prctl(option, value)``; False where there is no such call or it failed."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(option, value, 0, 0, 0) == 0)


def main(args: list[str]) -> int:
    parent, report_fd, uid, gid = map(int, args[:4])
    grace_s, argv = float(args[4]), args[5:]
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an inherited SIG_IGN would reap children unseen
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the server died before the request above: nobody wants the command
        return NOT_STARTED
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    command = _start(argv, report_fd, uid, gid)
    _let_go_of_stdio()
    statuses: dict[int, int] = {}
    _wait_for(command, statuses)
    _end_all(grace_s, statuses)
    _exit_like(statuses[command])


def _start(argv: list[str], report_fd: int, uid: int, gid: int) -> int:
    """The command's pid. Its process writes why it could not exec on ``report_fd``; an exec that works
    closes it (close-on-exec), so the server reads EOF once the command runs, or the reason it does not."""
    os.set_inheritable(report_fd, False)
    pid = os.fork()
    if pid == 0:
        _become(argv, report_fd, uid, gid)
    os.close(report_fd)
    return pid


def _become(argv: list[str], report_fd: int, uid: int, gid: int) -> NoReturn:
    """In the forked child: take the command's user (when ``uid`` is not -1) and signals, then exec it."""
    try:
        if uid >= 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        for ignored_by_python in (signal.SIGPIPE, signal.SIGXFSZ):  # a command expects them at default
            signal.signal(ignored_by_python, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(report_fd, f"{exc.errno}\n{exc.filename or argv[0]}".encode())
    finally:
        os._exit(NOT_STARTED)


def _let_go_of_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _wait_for(command: int, statuses: dict[int, int]) -> None:
    """Reap children as they exit, until the command has or a SIGTERM comes."""
    while command not in statuses:
        if signal.sigwaitinfo(_WATCHED).si_signo == signal.SIGTERM:
            return
        _reap(statuses)


def _end_all(grace_s: float, statuses: dict[int, int]) -> None:
    """SIGTERM every descendant, SIGKILL what is left after ``grace_s``; return once all are reaped."""
    left = _descendants()
    _send(left, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while left and time.monotonic() < deadline:
        signal.sigtimedwait({signal.SIGCHLD}, min(_POLL_S, max(0.0, deadline - time.monotonic())))
        _reap(statuses)
        left = _descendants()
    while left:  # a process may fork before its SIGKILL lands: look again until none is left
        _send(left, signal.SIGKILL)
        signal.sigtimedwait({signal.SIGCHLD}, _POLL_S)
        _reap(statuses)
        left = _descendants()


def _reap(statuses: dict[int, int]) -> None:
    """Reap every child that has exited (orphans re-parented here too), keeping their wait statuses."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        statuses[pid] = status


def _descendants() -> list[int]:
    """Every process below this one, zombies included, as /proc shows them now."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # it ended while being read
        children.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    below = [os.getpid()]
    while below:
        for child in children.get(below.pop(), ()):
            found.append(child)
            below.append(child)
    return found


def _send(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        # Gone already, or it made itself another user's (a set-user-ID program).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _exit_like(status: int) -> NoReturn:
    """Exit with the command's status, or die of the signal that killed it (without a core dump)."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # a signal whose default is not to die: say it the way a shell does
    os._exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
