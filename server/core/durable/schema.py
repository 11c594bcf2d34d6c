"""The store file's schema, its versions, and opening a file with a clear error for every way it fails.

The version is SQLite's ``user_version``. Each entry of ``MIGRATIONS`` takes a file from the version
before it to its own; a file of an older version is migrated forward when it is opened, one of a newer
version (written by a newer fanout-mcp) is refused rather than guessed at.

Columns hold what changes while a task runs or what a query filters on (state, times, partial output,
owner); ``body`` holds the record as JSON (``records.to_json``), written when the task is added and when
it ends: what never changes (its spec) and what its end says (output, answer, error).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from ..errors import FanoutError

_V1: Final = """
CREATE TABLE processes (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    closed_at REAL
);
CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    process TEXT NOT NULL,
    created_at REAL NOT NULL,
    spend TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    group_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    process TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    partial TEXT,
    note TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    spend TEXT,
    body TEXT NOT NULL
);
CREATE INDEX tasks_by_group ON tasks (group_id, state);
CREATE INDEX tasks_by_state ON tasks (state, finished_at);
CREATE INDEX tasks_by_process ON tasks (process, state);
CREATE TABLE syntheses (
    key TEXT PRIMARY KEY,
    final TEXT NOT NULL,
    tasks TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE cancel_requests (
    task_id TEXT PRIMARY KEY,
    process TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""

#: version -> the script that takes a file from the version before it to this one
MIGRATIONS: Final = {1: _V1}
#: how long a call waits for another process's write to end before it gives up (busy timeout)
LOCK_WAIT_S = 10.0
SCHEMA_VERSION: Final = max(MIGRATIONS)


class StoreUnavailable(FanoutError):
    """The store file cannot be used; the message names it and says what to do."""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it if missing) the store at ``path``, at the current schema version.

    Raises:
        StoreUnavailable: a missing or unwritable directory, a file that is not a store or is corrupt,
            one locked by another program, one written by a newer fanout-mcp.
    """
    if not path.parent.is_dir():
        raise StoreUnavailable(
            f"the task store {path} cannot be created: the directory {path.parent} does not exist. Create "
            "it, or choose another file with --store (or --store memory to keep nothing)."
        )
    try:
        conn = sqlite3.connect(path, timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _unavailable(path, exc) from None
    try:
        _prepare(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise _unavailable(path, exc) from None
    except StoreUnavailable:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL loses no consistency, only the last commits on a power cut (not on a crash of
    # the process), and saves an fsync per commit.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"the task store {path} was written by a newer fanout-mcp (schema version {version}; this one "
            f"knows up to {SCHEMA_VERSION}). Upgrade fanout-mcp, or choose another file with --store."
        )
    if version < SCHEMA_VERSION:
        _migrate(conn, version)
    conn.execute("SELECT count(*) FROM tasks").fetchone()  # a corrupt file fails here, not mid-run


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a file forward from ``version``, each step in one transaction with its version number."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _unavailable(path: Path, exc: sqlite3.Error) -> StoreUnavailable:
    text = str(exc)
    if "locked" in text or "busy" in text:
        what = f"is locked by another program (a transaction open for over {LOCK_WAIT_S:g} s)"
        todo = "Close the program that holds it, or choose another file with --store."
    elif "readonly" in text or "unable to open" in text or "read-only" in text:
        what = "cannot be written (the file or its directory is read-only, or not yours)"
        todo = "Make it writable, or choose another file with --store."
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        what = "is not a fanout-mcp task store, or it is corrupt"
        todo = "Move the file aside (its history is lost to this server), or choose another with --store."
    else:
        what = "cannot be used"
        todo = "Choose another file with --store, or --store memory to keep nothing."
    return StoreUnavailable(f"the task store {path} {what} ({text}). {todo}")
