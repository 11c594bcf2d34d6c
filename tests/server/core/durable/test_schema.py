"""Opening the store file: a clear error, naming the file and what to do, for each way it can fail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.core.durable.schema import SCHEMA_VERSION, StoreUnavailable, connect


def test_a_new_file_is_created_at_the_current_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "tasks.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_file_of_an_older_version_is_migrated_forward(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    sqlite3.connect(path).close()  # version 0: an empty SQLite file
    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    conn.close()


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"the directory .*nowhere does not exist.*--store"):
        connect(tmp_path / "nowhere" / "tasks.db")


def test_a_file_that_is_not_a_store_is_named_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    path.write_bytes(b"this is no database, just some text that is long enough " * 100)
    with pytest.raises(StoreUnavailable, match=r"tasks\.db is not a fanout-mcp task store.*Move the file"):
        connect(path)


def test_a_file_of_a_newer_fanout_mcp_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreUnavailable, match=r"written by a newer fanout-mcp.*Upgrade"):
        connect(path)


def test_a_file_locked_by_another_program_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tasks.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # an exclusive lock on a new file: nobody may even read it
    monkeypatch.setattr("server.core.durable.schema.LOCK_WAIT_S", 0.1)
    try:
        with pytest.raises(StoreUnavailable, match=r"is locked by another program"):
            connect(path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
