"""The durable task store: every task in a SQLite file that outlives the process and is shared by every
server process that opens it (``store.py``, opened by ``opening.py``), its reads and writes
(``database.py``) and its schema (``schema.py``). This module only says where the file is and checks it:
it stays light because the stdio server checks the file before its greeter answers."""

from __future__ import annotations

from pathlib import Path

from ...config.settings import Settings, default_store
from .schema import StoreUnavailable, connect

MEMORY = "memory"


def store_path(settings: Settings) -> Path | None:
    """The file the settings name (None: tasks are kept in memory)."""
    if settings.store == MEMORY:
        return None
    return Path(settings.store).expanduser() if settings.store is not None else default_store()


def check_store(settings: Settings) -> None:
    """Open and close the settings' store file at once, before serving: a bad one stops the server at
    start, with its message, rather than at its first tool call.

    Raises:
        StoreUnavailable: the file cannot be used (the message names it and says what to do).
    """
    path = store_path(settings)
    if path is not None:
        make_default_directory(settings, path)
        connect(path).close()


def describe_store(settings: Settings) -> str:
    """One line for ``doctor``: where tasks are kept, how many, the file's size and schema version."""
    path = store_path(settings)
    if path is None:
        return "memory (--store memory): tasks are kept until the server exits"
    try:
        check_store(settings)
        from .database import Database  # doctor only: the database module imports the task records

        facts = Database(path, "doctor").facts()
    except StoreUnavailable as exc:
        return f"unusable: {exc}"
    size = facts["bytes"] / 1024
    return (
        f"{path} ({facts['tasks']} tasks kept, {size:.0f} KiB, schema version {facts['schema_version']}; "
        f"finished tasks kept {settings.retention_s:g} s, at most {settings.max_finished})"
    )


def make_default_directory(settings: Settings, path: Path) -> None:
    """The default place is ours to make (private to the user); a path given must exist already."""
    if settings.store is not None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(
            f"the task store's directory {path.parent} cannot be created ({exc.strerror}). Set "
            "XDG_STATE_HOME to a writable directory, or choose a file with --store (or --store memory)."
        ) from None


__all__ = [
    "MEMORY",
    "StoreUnavailable",
    "check_store",
    "describe_store",
    "make_default_directory",
    "store_path",
]
