"""The client half of the 2026-07-28 tasks extension, as much as the tests need: a client that declares
the extension on every request and hands back the task handle a call returns, and ``tasks/get`` and
``tasks/cancel`` requests."""

from __future__ import annotations

from typing import Any, Literal

import mcp_types as types
from mcp import Client
from mcp.client import ClaimContext, ClientExtension, ResultClaim

EXTENSION = "io.modelcontextprotocol/tasks"


class TaskIdParams(types.RequestParams):
    task_id: str


class CreatedTask(types.Result):
    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str | None = None
    last_updated_at: str | None = None
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


class PolledTask(CreatedTask):
    result_type: Literal["task"] = "task"  # type: ignore[assignment]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class _Polled(types.Result):
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str | None = None
    last_updated_at: str | None = None
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class GetTask(types.Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams


class CancelTask(types.Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams


class TasksClient(ClientExtension):
    """Declares the extension; a handle is not polled here (the test does), so resolving one fails."""

    identifier = EXTENSION

    def claims(self) -> list[ResultClaim[Any]]:
        async def resolve(created: CreatedTask, cctx: ClaimContext) -> types.CallToolResult:
            raise AssertionError(f"call with allow_claimed=True to see the handle {created.task_id}")

        return [ResultClaim(result_type="task", model=CreatedTask, resolve=resolve)]


async def call_as_task(
    client: Client, tool: str, arguments: dict[str, Any]
) -> CreatedTask | types.CallToolResult:
    """The handle the call returned, or its plain result."""
    answer: Any = await client.session.call_tool(tool, arguments, allow_claimed=True)
    return answer


async def get_task(client: Client, task_id: str) -> _Polled:
    return await client.session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), _Polled)


async def cancel_task(client: Client, task_id: str) -> None:
    await client.session.send_request(CancelTask(params=TaskIdParams(task_id=task_id)), types.EmptyResult)
