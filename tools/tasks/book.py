"""The tasks this process serves through the protocol: each a ``Job`` that waits, in the background, for
the call its handle stands for (``handles.py``) to finish, and keeps its answer.

A job lives in the book's task group, which the server's lifespan owns. Its status comes from the
engine: the tasks its handle names, their counts and cost (``status.py``). The book is memory only,
and needs to be no more: a handle's id says what it stands for, and the tasks live in the store, so a
poll for an id the book does not hold (after a restart, or from another process on the same store)
opens the job again from the id. An id that names no kept group is unknown.

A job belongs to the principal whose call made it (or who opened it again from its id, after the tools'
own checks): another principal's poll, cancel or listing finds nothing, as for an unknown id.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer

from ...server import Caller, UnknownTask
from ..callers import caller_of
from ..engine import runtime_of
from ..results import Refusal, error_result
from ..run_parallel import collect
from .handles import Handle, parse
from .status import Progress, progress

logger = logging.getLogger(__name__)

Status = Literal["working", "completed", "failed", "cancelled"]
Step = Callable[[float], Awaitable[types.CallToolResult]]
Ended = Callable[["Job"], Awaitable[None]]

_KEPT: Final = 1_000  # jobs held at most; an ended one dropped is opened again from its id if polled


class TaskNotFound(Exception):
    """No task with this id: never given out, or its group is no longer kept."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(eq=False)
class Job:
    """One task: its handle, the tasks it waits for, its status and, once ended, its answer."""

    handle: Handle
    task_ids: list[str]
    ttl_ms: int
    owner: str  #: the principal whose call it stands for
    status: Status = "working"
    created_at: str = field(default_factory=_now)
    last_updated_at: str = field(default_factory=_now)
    progress: Progress | None = None
    result: dict[str, Any] | None = None  #: the CallToolResult, as sent, once completed
    error: dict[str, Any] | None = None  #: the JSON-RPC error, once failed
    cancel_asked: bool = False
    ended: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    on_end: list[Ended] = field(default_factory=list[Ended])

    @property
    def task_id(self) -> str:
        return self.handle.task_id

    @property
    def terminal(self) -> bool:
        return self.status != "working"

    @property
    def status_message(self) -> str | None:
        return self.progress.message if self.progress is not None else None

    @property
    def poll_interval_ms(self) -> int:
        return self.progress.poll_interval_ms if self.progress is not None else 1_000

    def observe(self, now: Progress) -> None:
        """What its tasks say now: ``last_updated_at`` moves when that changed."""
        if self.progress is None or now.signature != self.progress.signature:
            self.last_updated_at = _now()
        self.progress = now

    def end(
        self, status: Status, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
    ) -> None:
        if self.terminal:
            return
        self.status, self.result, self.error = status, result, error
        self.last_updated_at = _now()
        self.ended.set()


class TaskBook:
    """Opens, finds, drives and cancels jobs. Open it with ``open`` for the server's lifetime."""

    def __init__(self, operators: Collection[str] = ()) -> None:
        self._operators = operators  #: principals that see every job (``--operators``)
        self._mcp: MCPServer[Any] | None = None
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._tg: anyio.abc.TaskGroup | None = None

    def serve(self, mcp: MCPServer[Any]) -> None:
        """The server whose tools the jobs call (built after the book: it is built with the book's hooks)."""
        self._mcp = mcp

    @asynccontextmanager
    async def open(self) -> AsyncGenerator[TaskBook]:
        """The book, driving jobs until the context ends; then every job still working ends cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield self
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    def jobs(self, ctx: ServerRequestContext[Any, Any]) -> list[Job]:
        """The jobs this process holds that the caller of ``ctx`` may see, oldest first."""
        caller = self._caller(ctx)
        return [job for job in self._jobs.values() if caller.sees(job.owner)]

    async def start(
        self, handle: Handle, ctx: ServerRequestContext[Any, Any], on_end: Ended | None = None
    ) -> Job:
        """A job for ``handle``, driven from now on (the one already held for its id, if any).

        Raises:
            TaskNotFound: the handle names no kept group or task.
        """
        job = self._held(handle.task_id, ctx)
        if job is None:
            job = await self._open(handle, ctx)
        if on_end is not None:
            job.on_end.append(on_end)
        return job

    def ended(self, handle: Handle, answer: dict[str, Any], ctx: ServerRequestContext[Any, Any]) -> Job:
        """A job born ended: the call's ``answer`` (as sent) is its result. Kept for this process only
        (its id names no group: a refused call started none)."""
        job = Job(handle, [], ttl_ms=0, owner=self._caller(ctx).principal)
        job.end("completed", result=answer)
        self._jobs[job.task_id] = job
        self._forget_old()
        return job

    async def find(self, task_id: str, ctx: ServerRequestContext[Any, Any]) -> Job:
        """The job ``task_id`` names, opened again from the id if this process does not hold it, its
        status current.

        Raises:
            TaskNotFound: no such task (never given out, or no longer kept).
        """
        job = self._held(task_id, ctx)
        if job is None:
            handle = parse(task_id)
            if handle is None:
                raise TaskNotFound(task_id)
            job = await self._open(handle, ctx)
        if not job.terminal:
            job.observe(await progress(self._context(ctx), job.task_ids))
        return job

    async def cancel(self, job: Job, ctx: ServerRequestContext[Any, Any]) -> None:
        """Cancel the tasks the job waits for, as cancel_tasks does (its model synthesis too), and the job
        itself."""
        runtime = await runtime_of(self._context(ctx))
        job.cancel_asked = True
        synthesis: tuple[str, ...] = ()
        if job.handle.kind != "task_output":  # its model synthesis, if one started, goes with it
            synthesis = await runtime.synthesizer.started(
                job.task_ids, job.handle.arguments.get("instructions"), caller=self._caller(ctx)
            )
        try:
            runtime.registry.cancel(
                [*job.task_ids, *synthesis], reason="cancelled by tasks/cancel", caller=self._caller(ctx)
            )
        except UnknownTask:  # ended and no longer kept meanwhile: nothing left to cancel
            logger.debug("tasks of %s no longer kept", job.task_id)
        job.scope.cancel()

    async def _open(self, handle: Handle, ctx: ServerRequestContext[Any, Any]) -> Job:
        context = self._context(ctx)
        runtime = await runtime_of(context)
        caller = caller_of(context, runtime.settings.operators)
        try:
            ids = await runtime.registry.select(*_selector(handle), caller=caller)
        except Exception as exc:  # unknown, another principal's, evicted, or arguments no call would take
            raise TaskNotFound(handle.task_id) from exc
        job = Job(handle, ids, ttl_ms=int(runtime.settings.retention_s * 1000), owner=caller.principal)
        job.observe(await progress(context, ids))
        if (opened := self._jobs.get(job.task_id)) is not None:  # by a poll that came meanwhile
            return opened
        self._jobs[job.task_id] = job
        self._forget_old()
        assert self._tg is not None, "the book is not open"
        self._tg.start_soon(
            self._drive, job, self._step(handle, context), context, runtime.settings.max_wait_s
        )
        return job

    def _forget_old(self) -> None:
        while len(self._jobs) > _KEPT:
            oldest = next((key for key, job in self._jobs.items() if job.terminal), None)
            if oldest is None:
                return
            del self._jobs[oldest]

    def _server(self) -> MCPServer[Any]:
        assert self._mcp is not None, "the book serves no server"
        return self._mcp

    def _held(self, task_id: str, ctx: ServerRequestContext[Any, Any]) -> Job | None:
        """The job held for ``task_id``, if the caller of ``ctx`` may see it."""
        job = self._jobs.get(task_id)
        return job if job is not None and self._caller(ctx).sees(job.owner) else None

    def _caller(self, ctx: ServerRequestContext[Any, Any]) -> Caller:
        return caller_of(self._context(ctx), self._operators)

    def _context(self, ctx: ServerRequestContext[Any, Any]) -> Context:
        return Context(request_context=ctx, mcp_server=self._server())

    def _step(self, handle: Handle, context: Context) -> Step:
        """One bounded wait for what ``handle`` stands for: its call, with at most ``seconds`` of wait."""
        arguments = handle.arguments

        async def call(seconds: float) -> types.CallToolResult:
            if handle.kind != "run":
                answer = await self._server().call_tool(
                    handle.kind, {**arguments, "wait_s": seconds}, context
                )
                return cast(types.CallToolResult, answer)
            try:
                return await collect(
                    context, handle.group_id, arguments["mode"], arguments["instructions"],
                    arguments["quorum"], seconds,
                )  # fmt: skip
            except Refusal as refusal:
                return error_result(refusal)

        return call

    async def _drive(self, job: Job, step: Step, context: Context, seconds: float) -> None:
        try:
            with job.scope:
                await self._until_done(job, step, context, seconds)
        finally:
            job.end("cancelled")  # cancelled, or the server stopped first: no-op if it had ended
            with anyio.CancelScope(shield=True):
                for listener in job.on_end:
                    await listener(job)

    async def _until_done(self, job: Job, step: Step, context: Context, seconds: float) -> None:
        try:
            while True:
                answer = await step(seconds)
                structured = cast(dict[str, Any], answer.structured_content or {})
                if answer.is_error or structured.get("done"):
                    break
                # A step returns unfinished only once its wait has run out, or when what it waits
                # for cannot move on its own: pace the next one as a client would poll.
                await anyio.sleep(job.poll_interval_ms / 1000)
            job.observe(await progress(context, job.task_ids))  # the status message at the end
        except Exception as exc:
            logger.exception("task %s failed inside the server", job.task_id)
            job.end("failed", error={"code": types.INTERNAL_ERROR, "message": f"internal error: {exc!r}"})
            return
        if job.cancel_asked or (job.progress is not None and job.progress.all_cancelled):
            job.end("cancelled")
            return
        if structured.get("error", {}).get("kind") == "internal":
            job.end("failed", error={"code": types.INTERNAL_ERROR, "message": structured["error"]["message"]})
            return
        job.end("completed", result=answer.model_dump(by_alias=True, mode="json", exclude_none=True))


def _selector(handle: Handle) -> tuple[list[str] | None, str | None]:
    if handle.kind == "run":
        return None, handle.group_id
    task_ids = handle.arguments.get("task_ids")
    group_id = handle.arguments.get("group_id")
    return (cast(list[str], task_ids) if task_ids is not None else None), cast(str | None, group_id)
