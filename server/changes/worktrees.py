"""An edit task's worktree: made from its base, locked while the task runs, committed by the server when
the agent ends, and removed only once its work is in a ref (``git worktree remove``, never ``rm -rf``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import anyio

from .git import GitFailed, git

# `git worktree add` reads the administrative files of every other worktree of the repository and fails
# on one that a concurrent add has only half written ("failed to read .git/worktrees/<id>/commondir"), so
# the adds of this process take turns. A thread lock: it holds across event loops, and is never awaited.
_ADDING: Final = threading.Lock()


async def open_worktree(repo: Path, path: Path, base: str, ref: str, reason: str) -> None:
    """A detached, locked worktree of ``base`` at ``path``; ``ref`` points at the base from now on, so
    the base stays reachable whatever happens to the worktree."""
    await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
    await git(repo, "update-ref", ref, base)
    with anyio.CancelScope(shield=True):  # taken in a thread: a cancel meanwhile must not leave it taken
        await anyio.to_thread.run_sync(_ADDING.acquire)
    try:
        await git(repo, "worktree", "add", "--detach", "--lock", "--reason", reason, str(path), base)
    finally:
        _ADDING.release()


async def commit_worktree(worktree: Path, ref: str, message: str, kept_out: Sequence[str] = ()) -> str:
    """Commit everything in the worktree (new files too, ignored ones and ``kept_out`` not) on top of its
    HEAD, which the agent may have moved with commits of its own, and point ``ref`` at the result; its
    commit id. With nothing to commit, ``ref`` points at the HEAD as it is."""
    await git(worktree, "add", "-A")
    if kept_out:  # back out of the index to HEAD's version (an exclude pathspec fails on an ignored path)
        specs = "\0".join(f":(literal){path}" for path in kept_out).encode()
        await git(
            worktree, "reset", "-q", "HEAD", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=specs
        )
    tree = (await git(worktree, "write-tree")).line()
    head = (await git(worktree, "rev-parse", "HEAD")).line()
    head_tree = (await git(worktree, "rev-parse", "HEAD^{tree}")).line()
    commit = head
    if tree != head_tree:
        commit = (await git(worktree, "commit-tree", "--no-gpg-sign", tree, "-p", head, "-m", message)).line()
    await git(worktree, "update-ref", ref, commit)
    return commit


async def unlock(repo: Path, path: Path) -> None:
    await git(repo, "worktree", "unlock", str(path), ok=(0, 128))  # 128: it was not locked


async def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree whose work is already in its ref (what is left in it: ignored files, build
    output). A worktree already gone is pruned instead."""
    await unlock(repo, path)
    if await anyio.Path(path).exists():
        try:
            await git(repo, "worktree", "remove", "--force", str(path))
        except GitFailed:
            if await anyio.Path(path).exists():
                raise
    await git(repo, "worktree", "prune")
