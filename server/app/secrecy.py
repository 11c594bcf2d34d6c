"""Keeping the server's secrets (its API key, the configuration's ``env`` values) from its own subagents.

An agent CLI runs as the server's user, and a process may read the memory, environment, open files and
memory map of another process of its user (``/proc/PID/mem``, ``environ``, ``fd``, ``maps``) and attach a
debugger to it. ``seal`` forbids all of that for the server's process, to every process of its user,
including the commands it starts and all they start; only root still can. A command's own environment
is clean already (see ``backends/cli.py``), and its supervisor's holds only what the command's does.
``/proc/PID/cmdline`` stays readable by every user: no secret is ever given on the server's command line.
"""

from __future__ import annotations

from ..backends.supervisor import PR_SET_DUMPABLE, prctl


def seal() -> bool:
    """Make this process undumpable (Linux's ``PR_SET_DUMPABLE`` 0): its ``/proc`` files other than
    ``cmdline`` and ``stat`` become root's, and no process of its user may trace it. Returns whether it
    took effect: on other systems it does nothing."""
    return prctl(PR_SET_DUMPABLE, 0)
