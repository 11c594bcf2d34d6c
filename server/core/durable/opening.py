"""Opening the store the settings ask for: the durable file (``store.py``) or, with ``--store memory``, a
``MemoryStore``. Apart from the package's ``__init__`` so that checking the file at start (``check_store``)
does not import the store and the models it keeps, which the stdio greeter would otherwise wait for."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from ...config.settings import Settings
from ..store import MemoryStore, TaskStore
from . import make_default_directory, store_path
from .store import open_durable_store


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
    make_default_directory(settings, path)
    async with open_durable_store(
        path, retention_s=settings.retention_s, max_finished=settings.max_finished
    ) as store:
        yield store
