"""The dashboard's pages, event streams and cancel actions, as a Starlette app behind the ``Guard``.

It reads the engine through the registry only, as the caller the session signed in as: a principal
sees its own groups (an operator everyone's), and another's group answers 404 exactly as one that never
existed. Pages are rendered on the server (Jinja2, autoescaped); ``static/dashboard.js`` then keeps them
current from the page's event stream, writing every value with ``textContent``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ...server import Caller, RetryNotice, UnknownTask
from .edits import read_edits
from .events import updates
from .security import Gate, Guard
from .timeline import Timeline
from .views import View, group_row, group_view

if TYPE_CHECKING:
    from ...server import Runtime

_LISTED_TASKS: Final = 1000  #: the newest tasks read to find the groups page's groups
_LISTED_GROUPS: Final = 100
CANCEL_REASON: Final = "cancelled from the dashboard"


class RuntimeSource(Protocol):
    """Where the runtime comes from once it is open (the MCP server's ``RuntimeSlot``)."""

    async def get(self) -> Runtime: ...


def templates() -> Environment:
    # Every template escaped, whatever its name (timeline.svg included): outputs are text, never markup.
    loader = PackageLoader(__package__ or "", "templates")
    return Environment(loader=loader, autoescape=True, undefined=StrictUndefined)


class Dashboard:
    """One dashboard: its ``Gate``, what it has seen of each task's moments, and its app."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.timeline = Timeline()
        self.base_url: str | None = None  #: where it is served, once known
        self.closing = anyio.Event()  #: set when the server shuts down: the event streams end
        self._source: RuntimeSource | None = None
        self._attached = anyio.Event()
        self._templates = templates()

    def attach(self, source: RuntimeSource) -> None:
        """Read tasks from the runtime ``source`` gives (once it is open)."""
        self._source = source
        self._attached.set()

    def listen(self, runtime: Runtime) -> None:
        """Hear of every retry as it happens (the timeline's marks)."""

        def retried(notice: RetryNotice) -> None:
            self.timeline.retried(notice)

        runtime.registry.on_retry(retried)

    def link(self) -> str | None:
        """The URL to open (with the start token where one is needed), once served."""
        return None if self.base_url is None else self.gate.link(f"{self.base_url}/")

    def group_link(self, group_id: str) -> str | None:
        return None if self.base_url is None else self.gate.link(f"{self.base_url}/groups/{group_id}")

    def app(self) -> ASGIApp:
        static = StaticFiles(directory=Path(__file__).with_name("static"))
        routes = [
            Route("/", self._groups_page),
            Route("/events", self._groups_events),
            Route("/groups/{group_id}", self._group_page),
            Route("/groups/{group_id}/events", self._group_events),
            Route("/groups/{group_id}/cancel", self._cancel_group, methods=["POST"]),
            Route("/tasks/{task_id}/cancel", self._cancel_task, methods=["POST"]),
            Mount("/static", static, name="static"),
        ]
        return Guard(Starlette(routes=routes), self.gate)

    # --- reading --------------------------------------------------------------------------------------

    async def _runtime(self) -> Runtime:
        await self._attached.wait()
        assert self._source is not None
        return await self._source.get()

    async def groups(self, caller: Caller) -> list[View]:
        """The groups ``caller`` may see, newest first."""
        registry = (await self._runtime()).registry
        listing = await registry.list(limit=_LISTED_TASKS, caller=caller)
        newest = list(dict.fromkeys(snap.group_id for snap in reversed(listing.tasks)))[:_LISTED_GROUPS]
        rows: list[View] = []
        for group_id in newest:
            try:
                ids = await registry.select(None, group_id, caller=caller)
                rows.append(group_row(registry.group_summary(group_id), registry.counts(ids)))
            except UnknownTask:  # evicted meanwhile
                continue
        return rows

    async def group(self, caller: Caller, group_id: str) -> View:
        """One group's page.

        Raises:
            UnknownTask: no such group, or another principal's.
        """
        registry = (await self._runtime()).registry
        ids = await registry.select(None, group_id, caller=caller)
        snaps = registry.snapshots(ids)
        bars, span = self.timeline.bars(snaps)
        return group_view(registry.group_summary(group_id), snaps, bars, span)

    # --- pages and streams ----------------------------------------------------------------------------

    async def _groups_page(self, request: Request) -> Response:
        rows = await self.groups(request.state.caller)
        return self._page(request, "groups.html", events="/events", groups=rows)

    async def _group_page(self, request: Request) -> Response:
        group_id = request.path_params["group_id"]
        try:
            view = await self.group(request.state.caller, group_id)
        except UnknownTask:
            return PlainTextResponse(f"no group {group_id}", status_code=404)
        labels = {task["id"]: task["label"] for task in view["tasks"]}
        edits = await read_edits((await self._runtime()).changes, list(labels), labels)
        return self._page(request, "group.html", events=f"/groups/{group_id}/events", group=view, edits=edits)

    def _page(self, request: Request, name: str, **values: Any) -> HTMLResponse:
        html = self._templates.get_template(name).render(csrf=request.state.csrf, **values)
        return HTMLResponse(html)

    async def _groups_events(self, request: Request) -> Response:
        caller: Caller = request.state.caller

        async def read() -> str:
            return json.dumps({"groups": await self.groups(caller)})

        return self._stream(read)

    async def _group_events(self, request: Request) -> Response:
        caller: Caller = request.state.caller
        group_id = request.path_params["group_id"]
        try:
            await self.group(caller, group_id)
        except UnknownTask:
            return PlainTextResponse(f"no group {group_id}", status_code=404)

        async def read() -> str:
            return json.dumps({"group": await self.group(caller, group_id)})

        return self._stream(read)

    def _stream(self, read: Callable[[], Awaitable[str]]) -> StreamingResponse:
        return StreamingResponse(
            updates(read, self.closing),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    # --- actions --------------------------------------------------------------------------------------

    async def _cancel_task(self, request: Request) -> Response:
        return await self._cancel(request.state.caller, [request.path_params["task_id"]], None)

    async def _cancel_group(self, request: Request) -> Response:
        return await self._cancel(request.state.caller, None, request.path_params["group_id"])

    async def _cancel(self, caller: Caller, task_ids: list[str] | None, group_id: str | None) -> Response:
        registry = (await self._runtime()).registry
        try:
            ids = await registry.select(task_ids, group_id, caller=caller)
            outcome = registry.cancel(ids, CANCEL_REASON, caller=caller)
        except UnknownTask:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"cancelled": outcome.cancelled})
