"""The Message Batches half of the fake Messages API (tests/fake_api.py): its endpoints and batches.

`BatchStore` keeps the batches and serves `POST /v1/messages/batches`, `GET /v1/messages/batches`,
`GET|DELETE /v1/messages/batches/{id}`, `POST .../{id}/cancel` and `GET .../{id}/results`. What one
request of a batch ends as, auth, injected faults and recording are the host's (`FakeApi`) business,
through the small `BatchHost` interface below, so that this module imports nothing from fake_api.

Each request of a batch is validated and answered as a non-streamed /v1/messages request would be,
with the same directives (its usage says `"service_tier": "batch"`); an invalid one, or one whose
[[fail]] applies, ends `errored` with that error. Latency, streaming and the global limits play no
part. Directives for batches only:
    [[batch:expired]]   this request ends `expired`.
    [[batch:errored;type=T;message=M]]  this request ends `errored` (default type `api_error`).
    [[batch:hold]] / [[hold]]   the whole batch stays `in_progress` until the fake's `release()`.

A batch is `in_progress` until `FakeConfig.batch_delay_s` (read when it is created) has passed and, if
one of its requests is held, the hold gate is open; the first look after that ends it.
A cancelled batch is `canceling` in the cancel response and `ended` at the next look, every request
`canceled`. Time moves only when someone looks: there is no background task. `request_counts` count
every request as `processing` until the batch has ended, as the API does. Result lines come in reverse
request order, so that a client that assumes request order is caught.

Faults of the batch endpoints themselves come from `FakeConfig.batch_failures`: `{"retrieve": [429,
500]}` answers the next two retrieves 429, then 500 (endpoints: create, list, retrieve, cancel, delete,
results; the SDK's `results()` retrieves first). `{"create_after": [500]}` creates the batch and then
answers 500, as a gateway that lost the provider's answer would: the client cannot tell that the batch
exists. The fake's stats count batches and their requests.
"""

# The host's hooks are underscored (they are not part of FakeApi's API for tests) and called from here.
# pyright: reportPrivateUsage=false

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BatchHost", "BatchStore"]

_PREFIX = "/v1/messages/batches"
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_MAX_REQUESTS = 100_000
_OUTCOMES = ("succeeded", "errored", "canceled", "expired")


class BatchHost(Protocol):
    """What the store needs from the fake that serves it."""

    base_url: str

    def _batch_refusal(self, endpoint: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        """(status, error body) when the call is refused (auth, an injected fault), else None."""
        ...

    def _batch_result(self, params: object) -> tuple[dict[str, Any], bool]:
        """What one request ends as (a result line's `result`), and whether it holds its batch open."""
        ...

    def _batch_timing(self) -> tuple[float, bool]:
        """(`batch_delay_s`, whether the hold gate is open)."""
        ...

    def _batch_record(
        self, path: str, headers: dict[str, str], body: dict[str, Any], status: int, started_at: float
    ) -> None: ...


class _Refused(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": "error", "error": {"type": type_, "message": message}}


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    id: str
    results: list[tuple[str, dict[str, Any]]]  #: (custom_id, result), in request order
    ready_at: float  #: monotonic: when it may end
    held: bool
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "in_progress"
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None

    def advance(self, gate_open: bool) -> None:
        """End the batch if its time has come (or it is being cancelled)."""
        if self.status == "canceling":
            self.results = [(custom_id, {"type": "canceled"}) for custom_id, _ in self.results]
        elif (
            self.status != "in_progress" or time.monotonic() < self.ready_at or (self.held and not gate_open)
        ):
            return
        self.status, self.ended_at = "ended", datetime.now(UTC)

    def as_json(self, base_url: str) -> dict[str, Any]:
        ended = self.status == "ended"
        counts = dict.fromkeys(("processing", *_OUTCOMES), 0)
        for _, result in self.results:
            counts[result["type"] if ended else "processing"] += 1
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": counts,
            "created_at": _time(self.created_at),
            "expires_at": _time(self.created_at + timedelta(hours=24)),
            "ended_at": _time(self.ended_at),
            "cancel_initiated_at": _time(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{base_url}{_PREFIX}/{self.id}/results" if ended else None,
        }


class BatchStore:
    """The fake's batches. Thread-safe: `clear()` and `counts()` may be called from any thread."""

    def __init__(self, host: BatchHost) -> None:
        self._host = host
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}
        self._calls: dict[str, int] = {}
        self._created = self._requests = self._canceled = 0

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()
            self._calls.clear()
            self._created = self._requests = self._canceled = 0

    def counts(self) -> tuple[int, int, int, dict[str, int]]:
        """(batches created, requests in them, batches cancelled while in progress, calls by endpoint)."""
        with self._lock:
            return self._created, self._requests, self._canceled, dict(self._calls)

    def calls(self, endpoint: str) -> int:
        """Calls answered by `endpoint` (create, list, retrieve, cancel, delete, results), refused ones too."""
        with self._lock:
            return self._calls.get(endpoint, 0)

    def routes(self) -> list[Route]:
        return [
            Route(_PREFIX, self._endpoint("create", self._create), methods=["POST"]),
            Route(_PREFIX, self._endpoint("list", self._list), methods=["GET"]),
            Route(_PREFIX + "/{id}", self._endpoint("retrieve", self._retrieve), methods=["GET"]),
            Route(_PREFIX + "/{id}", self._endpoint("delete", self._delete), methods=["DELETE"]),
            Route(_PREFIX + "/{id}/cancel", self._endpoint("cancel", self._cancel), methods=["POST"]),
            Route(_PREFIX + "/{id}/results", self._endpoint("results", self._results), methods=["GET"]),
        ]

    def _endpoint(
        self, name: str, operation: Callable[[Request, dict[str, Any]], Response]
    ) -> Callable[[Request], Any]:
        """An endpoint that checks auth and injected faults first and records the call."""

        async def endpoint(request: Request) -> Response:
            started_at = time.monotonic()
            headers = {k.lower(): v for k, v in request.headers.items()}
            body: dict[str, Any] = {}
            if request.method == "POST":
                with contextlib.suppress(ValueError):
                    parsed: object = json.loads(await request.body() or b"{}")
                    body = cast("dict[str, Any]", parsed) if isinstance(parsed, dict) else {}
            refusal = self._host._batch_refusal(name, headers)
            try:
                if refusal is not None:
                    response: Response = JSONResponse(refusal[1], status_code=refusal[0])
                else:
                    response = operation(request, body)
                    lost = self._host._batch_refusal(f"{name}_after", headers)
                    if lost is not None and response.status_code == 200:
                        response = JSONResponse(lost[1], status_code=lost[0])
            except _Refused as refused:
                response = JSONResponse(refused.body, status_code=refused.status)
            with self._lock:
                self._calls[name] = self._calls.get(name, 0) + 1
            self._host._batch_record(request.url.path, headers, body, response.status_code, started_at)
            return response

        return endpoint

    def _find(self, request: Request, gate_open: bool) -> _Batch:
        """The batch the path names, advanced to now. Caller holds the lock, and never calls the host
        while holding it: the host's `wait_batch_calls` takes the host's lock, then this one."""
        batch = self._batches.get(request.path_params["id"])
        if batch is None:
            raise _Refused(404, f"no message batch with id {request.path_params['id']!r}", "not_found_error")
        batch.advance(gate_open)
        return batch

    def _gate_open(self) -> bool:
        return self._host._batch_timing()[1]

    # -- operations (on the server's event loop)

    def _create(self, request: Request, body: dict[str, Any]) -> Response:
        entries = _requests(body)
        delay, _ = self._host._batch_timing()
        planned = [(custom_id, self._host._batch_result(params)) for custom_id, params in entries]
        batch = _Batch(
            id=f"msgbatch_{uuid.uuid4().hex[:24]}",
            results=[(custom_id, result) for custom_id, (result, _) in planned],
            ready_at=time.monotonic() + delay,
            held=any(held for _, (_, held) in planned),
        )
        with self._lock:
            self._batches[batch.id] = batch
            self._created += 1
            self._requests += len(entries)
            return JSONResponse(batch.as_json(self._host.base_url))

    def _retrieve(self, request: Request, body: dict[str, Any]) -> Response:
        gate_open = self._gate_open()
        with self._lock:
            return JSONResponse(self._find(request, gate_open).as_json(self._host.base_url))

    def _list(self, request: Request, body: dict[str, Any]) -> Response:
        limit = int(request.query_params.get("limit", "20"))
        gate_open = self._gate_open()
        with self._lock:
            for batch in self._batches.values():
                batch.advance(gate_open)
            newest = [b.as_json(self._host.base_url) for b in reversed(self._batches.values())][:limit]
            more = len(self._batches) > limit
        first, last = (newest[0]["id"], newest[-1]["id"]) if newest else (None, None)
        return JSONResponse({"data": newest, "has_more": more, "first_id": first, "last_id": last})

    def _cancel(self, request: Request, body: dict[str, Any]) -> Response:
        gate_open = self._gate_open()
        with self._lock:
            batch = self._find(request, gate_open)
            if batch.status == "in_progress":
                batch.status, batch.cancel_initiated_at = "canceling", datetime.now(UTC)
                self._canceled += 1
            return JSONResponse(batch.as_json(self._host.base_url))

    def _delete(self, request: Request, body: dict[str, Any]) -> Response:
        gate_open = self._gate_open()
        with self._lock:
            batch = self._find(request, gate_open)
            if batch.status != "ended":
                raise _Refused(400, "a batch can be deleted only once it has ended; cancel it first")
            del self._batches[batch.id]
        return JSONResponse({"id": batch.id, "type": "message_batch_deleted"})

    def _results(self, request: Request, body: dict[str, Any]) -> Response:
        gate_open = self._gate_open()
        with self._lock:
            batch = self._find(request, gate_open)
            if batch.status != "ended":
                raise _Refused(
                    400, f"batch {batch.id} is still {batch.status}: results come once it has ended"
                )
            lines = [
                {"custom_id": custom_id, "result": result} for custom_id, result in reversed(batch.results)
            ]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return Response(data, media_type="application/x-jsonl")


def _requests(body: dict[str, Any]) -> list[tuple[str, object]]:
    """The (custom_id, params) of a create body, or a 400 as the API gives."""
    raw: object = body.get("requests")
    items = cast("list[object]", raw) if isinstance(raw, list) else []
    if not items or len(items) > _MAX_REQUESTS:
        raise _Refused(400, f"requests: must be a list of 1 to {_MAX_REQUESTS} objects")
    entries: list[tuple[str, object]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        fields = cast("dict[str, Any]", item) if isinstance(item, dict) else {}
        custom_id = fields.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            raise _Refused(400, f"requests.{index}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$")
        if custom_id in seen:
            raise _Refused(400, f"requests.{index}.custom_id: {custom_id!r} is not unique in the batch")
        if "params" not in fields:
            raise _Refused(400, f"requests.{index}.params: Field required")
        seen.add(custom_id)
        entries.append((custom_id, fields["params"]))
    return entries
