"""The ``io.modelcontextprotocol/tasks`` extension of the 2026-07-28 protocol (SEP-2663), as Claude Code
speaks it.

A ``tools/call`` whose own ``_meta`` declares the extension among the client's capabilities, to one of
the tools that may become tasks, runs first as a look (no wait): if that finishes it, the answer is the
plain result; otherwise it is a task handle (``resultType: "task"``) and the job waits in the background.
The client polls ``tasks/get`` until the task is ``completed`` (the result inline), ``failed`` (the
error inline) or ``cancelled``, and may send ``tasks/cancel``. A call that does not declare the
extension is served as ever, and its ``tasks/*`` requests are refused with ``-32021``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from .book import Job, TaskBook, TaskNotFound
from .handles import TOOLS, handle_for
from .mode import looking
from .wire import EXTENSION, NOT_FOUND, extension_task

_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


class TaskIdParams(types.RequestParams):
    task_id: str


class UpdateTaskParams(types.RequestParams):
    task_id: str
    input_responses: dict[str, Any] = Field(default_factory=dict[str, Any])


class TasksExtension(Extension):
    identifier = EXTENSION

    def __init__(self, book: TaskBook) -> None:
        self._book = book

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding("tasks/get", TaskIdParams, self._get, protocol_versions=modern),
            MethodBinding("tasks/cancel", TaskIdParams, self._cancel, protocol_versions=modern),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, protocol_versions=modern),
        ]

    async def intercept_tool_call(
        self, params: types.CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        looks = (params.arguments or {}).get("wait_s") == 0  # asked not to wait: nothing to wait for
        if params.name not in TOOLS or looks or not declared(ctx):
            return await call_next(ctx)
        with looking():
            answer = await call_next(ctx)
        structured = answer.structured_content if isinstance(answer, types.CallToolResult) else None
        if not isinstance(structured, dict):
            return answer
        handle = handle_for(params.name, params.arguments or {}, cast(dict[str, Any], structured))
        if handle is None:
            return answer
        job = await self._book.start(handle, ctx)
        return {"resultType": "task", **extension_task(job, detailed=False)}

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        job = await self._find(ctx, params.task_id)
        return {"resultType": "complete", **extension_task(job, detailed=True)}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        job = await self._find(ctx, params.task_id)
        if not job.terminal:
            await self._book.cancel(job, ctx)
        return {"resultType": "complete"}

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict[str, Any]:
        await self._find(ctx, params.task_id)  # no task of this server ever asks for input
        return {"resultType": "complete"}

    async def _find(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> Job:
        if not declared(ctx):
            raise MCPError(
                code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                message=f"Client did not declare required extension {EXTENSION!r}",
                data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
            )
        try:
            return await self._book.find(task_id, ctx)
        except TaskNotFound:
            raise MCPError(code=types.INVALID_PARAMS, message=NOT_FOUND) from None


def declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request (its own ``_meta``: the client decides call by call) declares the extension."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities: Any = (ctx.meta or {}).get(_CAPABILITIES)
    if isinstance(capabilities, dict):
        extensions: Any = cast(dict[str, Any], capabilities).get("extensions")
        return isinstance(extensions, dict) and EXTENSION in extensions
    declared_here = ctx.session.client_capabilities
    return bool(declared_here and declared_here.extensions and EXTENSION in declared_here.extensions)
