"""What a server adds to serve tool calls as tasks (see the package)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from .book import TaskBook
from .core import CoreTasks
from .extension import TasksExtension


class TaskSupport:
    """What a server adds to serve tasks: the extension and the middleware to construct it with, then
    ``serve`` it, and ``open`` for its lifetime (inside the runtime's: jobs read the runtime)."""

    def __init__(self, operators: Collection[str] = ()) -> None:
        self.book = TaskBook(operators)
        self.extension = TasksExtension(self.book)
        self.middleware = CoreTasks(self.book)

    def serve(self, mcp: MCPServer[Any]) -> None:
        self.book.serve(mcp)

    @asynccontextmanager
    async def open(self) -> AsyncGenerator[None]:
        async with self.book.open():
            yield
