"""Ending a memory store's task ``interrupted``, as a durable store does for the tasks of a process that
died (its database marks them and this process reads them back; a MemoryStore never does it itself)."""

from __future__ import annotations

import time

from server import TaskState
from server.core.store import MemoryStore, Outcome


def interrupt(store: MemoryStore, task_id: str, reason: str, at: float) -> None:
    """End an unfinished task ``interrupted`` at ``at`` (monotonic), ``reason`` its note, keeping what
    the record holds of its output."""
    record = store.task(task_id)
    assert record is not None
    outcome = Outcome(record.output, None, None, record.model, None, reason, record.attempts, time.time())
    store.move(task_id, TaskState.INTERRUPTED, at, outcome)
