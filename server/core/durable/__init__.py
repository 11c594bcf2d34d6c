"""The durable task store: every task in a SQLite file that outlives the process and is shared by every
server process that opens it (``store.py``), its reads and writes (``database.py``) and its schema
(``schema.py``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

from ...config.settings import Settings, default_store
from ..store import MemoryStore, TaskStore
from .schema import StoreUnavailable
from .store import DurableStore, open_durable_store

MEMORY = "memory"


def store_path(settings: Settings) -> Path | None:
    """The file the settings name (None: tasks are kept in memory)."""
    if settings.store == MEMORY:
        return None
    return Path(settings.store).expanduser() if settings.store is not None else default_store()


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncGenerator[TaskStore, None]:
    """The store the settings ask for, open for the block.

    Raises:
        StoreUnavailable: the file cannot be used (the message names it and says what to do).
    """
    path = store_path(settings)
    if path is None:
        yield MemoryStore()
        return
    if settings.store is None:  # the default place is ours to make; a path given must exist
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    async with open_durable_store(
        path, retention_s=settings.retention_s, max_finished=settings.max_finished
    ) as store:
        yield store


__all__ = ["MEMORY", "DurableStore", "StoreUnavailable", "open_store", "store_path"]
