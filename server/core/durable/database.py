"""The store file's reads and writes: plain blocking calls, made one at a time in a worker thread.

``DurableStore`` (``store.py``) never calls these on the event loop: it hands each to a worker thread,
one at a time (one connection, one caller). Records cross as ``TaskRecord``/``GroupRecord`` values
(``records.py``); JSON is made and parsed here, in the worker thread.

Times in the file are wall-clock seconds (another process, or this one after a restart, reads them); a
record in memory keeps ``started`` and ``ended`` on the monotonic clock, so they are converted on the way
in and out with this process's offset between the two clocks.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..records import GroupRecord, Spend, TaskRecord, from_json, group_from_json, to_json
from ..state import TERMINAL_STATES, TaskState
from .schema import connect

#: wall clock minus monotonic clock, in this process
_OFFSET: Final = time.time() - time.monotonic()
_UNFINISHED: Final = (TaskState.QUEUED.value, TaskState.RUNNING.value)
_TERMINAL: Final = tuple(state.value for state in TERMINAL_STATES)
_COLUMNS: Final = "id, state, started_at, finished_at, partial, note, attempts, spend, body"
#: a process whose heartbeat is this old is gone, even if a process of its pid runs (pid reuse, a hang)
STALE_AFTER_S: Final = 30.0
HOST: Final = socket.gethostname()


def wall(monotonic: float | None) -> float | None:
    return None if monotonic is None else monotonic + _OFFSET


def monotonic(wall_clock: float | None) -> float | None:
    return None if wall_clock is None else wall_clock - _OFFSET


@dataclass(slots=True)
class Batch:
    """What a flush writes, in one transaction. Column values are taken on the event loop, when the
    flush starts; records whose ``body`` is written are new or ended, and an ended record never changes."""

    new_groups: list[GroupRecord] = field(default_factory=list[GroupRecord])
    group_spends: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])  #: (spend, id)
    new_tasks: list[tuple[TaskRecord, tuple[Any, ...]]] = field(
        default_factory=list[tuple[TaskRecord, tuple[Any, ...]]]
    )
    #: (columns, the record if it ended: its body is rewritten)
    changed: list[tuple[tuple[Any, ...], TaskRecord | None]] = field(
        default_factory=list[tuple[tuple[Any, ...], TaskRecord | None]]
    )
    cancel_requests: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])  #: (id, why)
    #: model syntheses started: (key, the ids of their tasks, the last one the answer)
    syntheses: list[tuple[str, tuple[str, ...]]] = field(default_factory=list[tuple[str, tuple[str, ...]]])


def columns(record: TaskRecord, partial: str | None, note: str | None, attempts: int) -> tuple[Any, ...]:
    """A task's changing columns, taken now: state, times, partial output, note, tries, spend."""
    spend = record.spend
    return (
        record.state.value,
        wall(record.started),
        record.finished_at,
        partial,
        note,
        attempts,
        spend_json(spend),
        record.id,
    )


def spend_json(spend: Spend) -> str:
    """A spend as the file keeps it: a JSON list of its counts and cost."""
    return json.dumps(
        [spend.input_tokens, spend.output_tokens, spend.cache_write_tokens, spend.cache_read_tokens,
         spend.cost_usd]
    )  # fmt: skip


def _spend(text: str | None) -> Spend:
    if not text:
        return Spend()
    values = json.loads(text)
    return Spend(*values)


class Database:
    """One connection to the store file, used by one thread at a time."""

    def __init__(self, path: Path, process_id: str) -> None:
        self.path = path
        self.process_id = process_id
        self._conn = connect(path)

    def close(self) -> None:
        self._conn.close()

    # --- processes -----------------------------------------------------------------------------------

    def register(self) -> None:
        now = time.time()
        with self._transaction():
            self._conn.execute(
                "INSERT INTO processes (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)",
                (self.process_id, os.getpid(), HOST, now, now),
            )

    def unregister(self) -> None:
        with self._transaction():
            self._conn.execute(
                "UPDATE processes SET closed_at = ?, heartbeat_at = ? WHERE id = ?",
                (time.time(), time.time(), self.process_id),
            )

    def interrupt_orphans(self) -> int:
        """End ``interrupted`` every unfinished task whose process is gone; how many."""
        now = time.time()
        rows = self._conn.execute(
            "SELECT id, pid, host, heartbeat_at, closed_at FROM processes WHERE id != ?", (self.process_id,)
        ).fetchall()
        gone = [row for row in rows if _gone(row, now)]
        ended = 0
        with self._transaction():
            for process_id, pid, host, _, _ in gone:
                why = f"the server process that ran it (pid {pid} on {host}) ended before the task did"
                cursor = self._conn.execute(
                    f"UPDATE tasks SET state = ?, finished_at = ?, note = ? "
                    f"WHERE process = ? AND state IN {_UNFINISHED}",
                    (TaskState.INTERRUPTED.value, now, why, process_id),
                )
                ended += cursor.rowcount
                self._conn.execute("DELETE FROM processes WHERE id = ?", (process_id,))
                self._conn.execute("DELETE FROM cancel_requests WHERE process = ?", (process_id,))
        return ended

    # --- writing -------------------------------------------------------------------------------------

    def write(self, batch: Batch) -> list[tuple[str, str]]:
        """A flush and this process's heartbeat, in one transaction; the requests other processes left to
        cancel this process's tasks, (task id, why), each once."""
        conn = self._conn
        with self._transaction():
            conn.executemany(
                "INSERT INTO groups (id, owner, process, created_at, spend, body) VALUES (?, ?, ?, ?, ?, ?)",
                [(g.id, g.owner, self.process_id, time.time(), spend_json(g.spend), to_json(g).decode())
                 for g in batch.new_groups],
            )  # fmt: skip
            conn.executemany("UPDATE groups SET spend = ? WHERE id = ?", batch.group_spends)
            conn.executemany(
                "INSERT INTO tasks (group_id, owner, process, body, state, started_at, finished_at, "
                "partial, note, attempts, spend, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.group_id, r.owner, self.process_id, to_json(r).decode(), *cols)
                 for r, cols in batch.new_tasks],
            )  # fmt: skip
            conn.executemany(
                "UPDATE tasks SET body = coalesce(?, body), state = ?, started_at = ?, finished_at = ?, "
                "partial = ?, note = ?, attempts = ?, spend = ? WHERE id = ?",
                [(None if r is None else to_json(r).decode(), *cols) for cols, r in batch.changed],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO cancel_requests (task_id, process, reason, at) "
                "SELECT id, process, ?, ? FROM tasks WHERE id = ?",
                [(reason, time.time(), task_id) for task_id, reason in batch.cancel_requests],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO syntheses (key, final, tasks, created_at) VALUES (?, ?, ?, ?)",
                [(key, ids[-1], json.dumps(ids), time.time()) for key, ids in batch.syntheses],
            )
            conn.execute("UPDATE processes SET heartbeat_at = ? WHERE id = ?", (time.time(), self.process_id))
            rows = conn.execute(
                "SELECT task_id, reason FROM cancel_requests WHERE process = ?", (self.process_id,)
            ).fetchall()
            if rows:
                conn.execute("DELETE FROM cancel_requests WHERE process = ?", (self.process_id,))
        return [(task_id, reason) for task_id, reason in rows]

    def prune(self, ended_before: float, keep: int) -> int:
        """Delete ended tasks that ended before ``ended_before`` or beyond the newest ``keep``, and the
        groups left without tasks; how many tasks."""
        with self._transaction():
            deleted = self._conn.execute(
                f"DELETE FROM tasks WHERE state IN {_TERMINAL} AND (finished_at < ? OR id IN ("
                f"SELECT id FROM tasks WHERE state IN {_TERMINAL} ORDER BY finished_at DESC "
                "LIMIT -1 OFFSET ?))",
                (ended_before, keep),
            ).rowcount
            if deleted:
                self._conn.execute(
                    "DELETE FROM groups WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE group_id = groups.id)"
                )
                self._conn.execute(
                    "DELETE FROM syntheses WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE id = syntheses.final)"
                )
        return deleted

    # --- reading -------------------------------------------------------------------------------------

    def tasks(self, task_ids: Sequence[str], *, ended_only: bool = False) -> list[TaskRecord]:
        """The records of those of ``task_ids`` the file holds (only those that have ended, if asked)."""
        ended = f" AND state IN {_TERMINAL}" if ended_only else ""
        found: list[TaskRecord] = []
        for chunk in _chunks(task_ids):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id IN ({marks}){ended}", chunk)
            found.extend(_record(row) for row in rows)
        return found

    def synthesis(self, key: str) -> tuple[str, ...] | None:
        """The tasks of the model synthesis started under ``key`` (the last one the answer), if any."""
        row = self._conn.execute("SELECT tasks FROM syntheses WHERE key = ?", (key,)).fetchone()
        return None if row is None else tuple(json.loads(row[0]))

    def group(self, group_id: str) -> GroupRecord | None:
        row = self._conn.execute("SELECT spend, body FROM groups WHERE id = ?", (group_id,)).fetchone()
        if row is None:
            return None
        group = group_from_json(row[1])
        group.spend = _spend(row[0])
        group.spent_usd = group.spend.cost_usd or 0.0
        return group

    def tally(self, group_id: str | None, owner: str | None) -> dict[TaskState, int]:
        where, params = _where(group_id, owner)
        tally = dict.fromkeys(TaskState, 0)
        for state, count in self._conn.execute(
            f"SELECT state, count(*) FROM tasks {where} GROUP BY state", params
        ):
            tally[TaskState(state)] = count
        return tally

    def newest(
        self, group_id: str | None, state: TaskState | None, limit: int, owner: str | None
    ) -> list[TaskRecord]:
        where, params = _where(group_id, owner, state)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM tasks {where} ORDER BY seq DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [_record(row) for row in reversed(rows)]

    def facts(self) -> dict[str, Any]:
        """What ``doctor`` says about the file."""
        count = self._conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        size = sum(p.stat().st_size for p in _files(self.path))
        return {"path": str(self.path), "tasks": count, "schema_version": version, "bytes": size}

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on an error): the write lock is taken at once,
    so two processes never deadlock upgrading read locks."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self._conn.execute("COMMIT" if kind is None else "ROLLBACK")


def _record(row: tuple[Any, ...]) -> TaskRecord:
    """A record from its row: the body, with the columns (which change while it runs) laid over it."""
    _, state, started_at, finished_at, partial, note, attempts, spend, body = row
    record = from_json(body)
    record.state = TaskState(state)
    record.started = monotonic(started_at)
    record.finished_at = finished_at
    record.ended = monotonic(finished_at)
    record.spend = _spend(spend)
    if partial is not None or not record.state.terminal or record.state is TaskState.INTERRUPTED:
        record.output, record.note, record.attempts = partial, note, attempts
    return record


def _where(
    group_id: str | None, owner: str | None, state: TaskState | None = None
) -> tuple[str, tuple[str, ...]]:
    clauses: list[str] = []
    params: list[str] = []
    for column, value in (("group_id", group_id), ("owner", owner), ("state", state)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _chunks(ids: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _gone(row: tuple[Any, ...], now: float) -> bool:
    """Whether a process of the file is gone: closed, silent for too long, or (on this host) not alive."""
    _, pid, host, heartbeat_at, closed_at = row
    if closed_at is not None or now - heartbeat_at > STALE_AFTER_S:
        return True
    if host != HOST:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
