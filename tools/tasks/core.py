"""Core tasks of the 2025-11-25 protocol (SEP-1686), as VS Code speaks them: a middleware, since the SDK
serves no ``tasks/*`` method at that version and would refuse a ``CreateTaskResult`` from a handler.

It adds the ``tasks`` capability to the ``initialize`` answer and ``execution.taskSupport: "optional"``
to the tools that may become tasks; answers a ``tools/call`` to one of them that carries ``params.task``
with a ``CreateTaskResult`` at once; serves ``tasks/get``, ``tasks/result`` (which waits for the end),
``tasks/list`` and ``tasks/cancel``; and sends ``notifications/tasks/status`` when a task ends. Every
other request, and every request at any other version, passes through unchanged.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from typing import Any, Final, cast

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from .book import Ended, Job, TaskBook, TaskNotFound
from .handles import TOOLS, Handle, handle_for
from .mode import looking
from .wire import NOT_FOUND, RELATED, core_task

logger = logging.getLogger(__name__)

CORE: Final = "2025-11-25"
CAPABILITY: Final[dict[str, Any]] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
_CANCEL_GRACE_S: Final = 5.0  # how long tasks/cancel waits for the task to end before it answers


class CoreTasks:
    """The middleware (see the module)."""

    def __init__(self, book: TaskBook) -> None:
        self._book = book

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            return _with_capability(await call_next(ctx))
        if ctx.protocol_version != CORE:
            return await call_next(ctx)
        params = dict(ctx.params or {})
        if ctx.method == "tools/list":
            return _with_execution(await call_next(ctx))
        if ctx.method == "tools/call" and params.get("task") is not None and params.get("name") in TOOLS:
            return await self._call(ctx, call_next, params)
        if ctx.method == "tasks/list":
            return {"tasks": [core_task(job) for job in self._book.jobs(ctx)]}
        if ctx.method in ("tasks/get", "tasks/result", "tasks/cancel"):
            job = await self._find(ctx, params)
            if ctx.method == "tasks/get":
                return core_task(job)
            if ctx.method == "tasks/result":
                return await _result(job)
            return await self._cancel(ctx, job)
        return await call_next(ctx)

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, params: dict[str, Any]
    ) -> dict[str, Any]:
        del params["task"]
        with looking():
            answer = cast(dict[str, Any], await call_next(replace(ctx, params=params)))
        name, arguments = str(params["name"]), cast(dict[str, Any], params.get("arguments") or {})
        structured = cast(dict[str, Any], answer.get("structuredContent") or {})
        # The client asked for a task: it gets one, ended at once if the call finished (or failed).
        handle = handle_for(name, arguments, structured, finished_too=True)
        job = (
            await self._book.start(handle, ctx, on_end=_notifier(ctx))
            if handle is not None
            else self._book.ended(Handle(TOOLS[name], f"done-{secrets.token_urlsafe(12)}", {}), answer, ctx)
        )
        return {"task": core_task(job)}

    async def _find(self, ctx: ServerRequestContext[Any, Any], params: dict[str, Any]) -> Job:
        try:
            return await self._book.find(str(params.get("taskId", "")), ctx)
        except TaskNotFound:
            raise MCPError(code=types.INVALID_PARAMS, message=NOT_FOUND) from None

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], job: Job) -> dict[str, Any]:
        if job.terminal:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Cannot cancel task: already {job.status}")
        await self._book.cancel(job, ctx)
        with anyio.move_on_after(_CANCEL_GRACE_S):
            await job.ended.wait()
        return core_task(job)


async def _result(job: Job) -> dict[str, Any]:
    """The task's result once it has ended (it waits, as ``tasks/result`` does)."""
    await job.ended.wait()
    if job.status == "completed" and job.result is not None:
        return {**job.result, "_meta": {**job.result.get("_meta", {}), RELATED: {"taskId": job.task_id}}}
    if job.status == "failed" and job.error is not None:
        raise MCPError(code=job.error["code"], message=job.error["message"])
    raise MCPError(code=types.INVALID_PARAMS, message=f"Task {job.task_id} was {job.status}")


def _notifier(ctx: ServerRequestContext[Any, Any]) -> Ended:
    async def notify(job: Job) -> None:
        status = types.TaskStatusNotificationParams.model_validate(core_task(job))
        try:
            # Not in the SDK's ServerNotification union (it types no tasks), but sent as any other.
            notification: Any = types.TaskStatusNotification(params=status)
            await ctx.session.send_notification(notification)
        except Exception:  # a client that went away must not fail the task
            logger.debug("notifications/tasks/status for %s not sent", job.task_id, exc_info=True)

    return notify


def _with_capability(answer: HandlerResult) -> HandlerResult:
    if isinstance(answer, dict) and answer.get("protocolVersion") == CORE:
        result = answer
        result["capabilities"] = {**result.get("capabilities", {}), "tasks": CAPABILITY}
    return answer


def _with_execution(answer: HandlerResult) -> HandlerResult:
    if isinstance(answer, dict):
        for tool in cast(list[dict[str, Any]], answer.get("tools", [])):
            if tool.get("name") in TOOLS:
                tool["execution"] = {"taskSupport": "optional"}
    return answer
