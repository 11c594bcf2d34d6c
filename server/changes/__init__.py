"""Edit tasks' git side: snapshots, worktrees, change sets, the conflict matrix, apply, undo and cleanup.

Every git call goes through ``git.py`` (a real ``git`` subprocess, off the event loop, its failures
translated there). The user's repository is only ever read, except by an explicit apply, which writes
its working tree and nothing else (never HEAD, the index, branches or the stash); the refs under
``refs/fanout/`` and the worktrees' registrations are the server's own.
"""
