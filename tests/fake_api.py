"""A fake Anthropic Messages API served over real HTTP on 127.0.0.1, for tests.

A Starlette app run by uvicorn in a background thread with its own event loop (`serve_in_thread`), or
as its own process (`python tests/fake_api.py --port 0`, which prints `FAKE_API_URL=...`), or around one
command (`python tests/fake_api.py -- COMMAND ...`: it runs COMMAND with `ANTHROPIC_BASE_URL` pointed at
the fake and `ANTHROPIC_API_KEY=fake`, then stops, with COMMAND's exit status). The real
`anthropic` SDK reaches it through `base_url`.

Endpoints: `POST /v1/messages` (JSON, or SSE when `"stream": true`), `POST /v1/messages/count_tokens`
(input tokens counted as below; no directives apply; recorded in `token_counts`, not in `requests` or
`stats()`: the server checks its endpoint with one before its first task's request, and tests of tasks
count what the tasks sent), `GET /v1/models`, the Message Batches API (create,
list, retrieve, cancel, delete, results; see tests/fake_batches.py), and a control plane for
out-of-process use: `GET /_fake/stats`, `POST /_fake/config` (a JSON object of `FakeConfig` fields),
`POST /_fake/reset`, `POST /_fake/release`, `POST /_fake/rearm`.

Directives, written anywhere in the text of the request's user messages (later messages win):
    [[reply:TEXT]]      reply exactly TEXT (no `]]` inside; newlines allowed). Wins over [[words]].
    [[reply64:B64]]     reply the UTF-8 text whose base64 is B64 (for JSON, which may hold `]]`).
    [[then:TEXT]] / [[then64:B64]]  the reply to a follow-up turn (a request with more than one user
                        message, such as a repair request), instead of the reply above.
    [[tools64:B64]]     tool use: B64 is the base64 of a JSON list of rounds, each a list of
                        {"name": ..., "input": {...}}. While fewer user turns carry tool_result blocks
                        than there are rounds (and tool_choice is not "none"), the answer is the next
                        round's tool_use blocks (stop_reason "tool_use"); after that, the reply as usual.
    [[tool_echo]]       the reply (once the rounds are used) is the JSON list of every tool_result so far,
                        [{"is_error": bool, "content": str}, ...], so a test sees what the tools answered.
    [[words:N]]         reply `w1 w2 ... wN`. Without either: `FakeConfig.default_words` words, or, for a
                        request that asks for a JSON Schema (`output_config.format`), a valid instance of
                        it chosen by the prompt (tests/fake_answers.py: findings for the files the prompt
                        shows, a synthesis that merges the answers it holds, or a generic instance).
    [[fail:STATUS;count=N;retry-after=S;retry-after-ms=MS;should-retry=BOOL;type=T;message=M]]
                        the first N attempts (default: all) answer STATUS with that error.
    [[stream_error:after=K;count=N;type=T]]  streamed: K text deltas, then `event: error` of type T
                        (default overloaded_error).
    [[truncate:after=K;count=N]]      streamed: K text deltas, then the stream ends cleanly, without
                        `message_delta` or `message_stop` (as a proxy that cuts a stream might).
    [[drop:after=K;count=N]]          streamed: K text deltas, then the connection is aborted.
                        The SDK's stream iterator raises `httpx2.RemoteProtocolError` ("peer closed
                        connection without sending complete message body"), NOT an `anthropic` error,
                        and nothing retries it. Non-streamed: half the JSON is sent, then the abort; the
                        SDK retries that and finally raises `anthropic.APIConnectionError`.
    [[latency:S]]       this request's latency instead of `FakeConfig.latency`.
    [[hold]]            after the latency, before any byte (also of a [[fail]]), wait at the gate.
    [[hold:after=K]]    streamed: K text deltas, then wait at the gate (non-streamed: as [[hold]]).
                        A held request waits for `release()`, and is abandoned if its client goes away.

Message Batches: see tests/fake_batches.py for what a batch's requests end as, and its directives.

A request the global limits refuse (429 from `rpm_limit`, 529 from `max_concurrency`) is answered at
once, without the latency: the limiter generates nothing.

Attempts are counted per request identity, the sha256 of the canonical JSON of (model, system,
messages), never from headers; only requests that pass auth, validation and the global limits
(`max_concurrency`, then `rpm_limit`) are attempts. Directives apply to every attempt unless limited
by `count`; [[stream_error]] does nothing to a non-streamed request.

Tokens are 4 characters each, rounded up: the text of `system` and of every message (other blocks
count as their JSON). The cacheable prefix is the `system` blocks up to the last one carrying
`cache_control`, sized by their text; below `min_cache_tokens` it is not cached. Key: sha256 of
model + prefix texts. A key becomes readable once a response that wrote it has sent its usage
(`message_start`, or the JSON body); until then every request writes it. Entries never expire.
"""

# The ASGI endpoint below is the other half of FakeApi and uses its underscored methods.
# pyright: reportPrivateUsage=false

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

try:
    from tests.fake_answers import schema_answer, wanted_schema
    from tests.fake_batches import BatchStore
except ModuleNotFoundError:  # run as a script (python tests/fake_api.py): tests/ itself is on sys.path
    from fake_answers import schema_answer, wanted_schema  # pyright: ignore[reportMissingImports]
    from fake_batches import BatchStore  # pyright: ignore[reportMissingImports]

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from starlette.types import Receive, Scope, Send

__all__ = ["DroppedConnection", "FakeApi", "FakeConfig", "FakeStats", "RecordedRequest", "serve_in_thread"]

_T = TypeVar("_T")
#: plays the model: a request's body -> the answer's text, tool calls, or None (see FakeApi.script)
Script = Callable[[dict[str, Any]], str | list[dict[str, Any]] | None]

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
MODEL_ID = "claude-sonnet-5-5"
MODELS_PAGE: dict[str, Any] = {
    "data": [
        {
            "type": "model",
            "id": MODEL_ID,
            "display_name": "Claude Sonnet 5.5",
            "created_at": "2026-06-01T00:00:00Z",
        }
    ],
    "has_more": False,
    "first_id": MODEL_ID,
    "last_id": MODEL_ID,
}
_DIRECTIVE = re.compile(r"\[\[([a-z_0-9]+)(?::(.*?))?\]\]", re.DOTALL)
_RATE_WINDOW = 60.0


@dataclass
class FakeConfig:
    """Behaviour knobs. Mutable: tests may assign fields between requests."""

    latency: float = 0.0  #: seconds before the first byte of every /v1/messages response
    chunk_words: int = 3  #: words per text_delta event when streaming
    chunk_delay: float = 0.0  #: seconds between text_delta events
    default_words: int = 20  #: words in the default reply
    rpm_limit: int | None = None  #: admitted requests per sliding rate window; over it -> 429
    #: the requests per window the rate-limit headers announce when rpm_limit is None (a large account's;
    #: the fake counts them but refuses none), so that a client sees headroom as it would on a real one
    announced_rpm: int = 50_000
    announced_tpm: int = 20_000_000  #: input and output tokens per minute announced (not counted)
    rate_window_s: float = 60.0  #: the window rpm_limit counts in (shorter windows make benchmarks quicker)
    max_concurrency: int | None = None  #: admitted requests in flight; over it -> 529
    min_cache_tokens: int = 1024  #: a shorter cache_control prefix is not cached
    require_auth: bool = True  #: 401 without `Authorization: Bearer <x>` or `x-api-key`
    #: the keys accepted (None: any); another is answered 401 authentication_error "invalid x-api-key",
    #: with the API's body shape, on every endpoint
    api_keys: list[str] | None = None
    batch_delay_s: float = 0.0  #: a Message Batch ends this long after it was created
    #: statuses the batch endpoints answer next, by endpoint (create, list, retrieve, cancel, delete,
    #: results); each is used once, e.g. {"retrieve": [429, 500]}
    batch_failures: dict[str, list[int]] = field(default_factory=dict[str, list[int]])


@dataclass(frozen=True)
class RecordedRequest:
    """One request to the API (/v1/messages, count_tokens or a Message Batches endpoint) as the fake saw it."""

    path: str
    headers: dict[str, str]  #: lower-cased names
    body: dict[str, Any]  #: parsed JSON ({} when it did not parse)
    status: int  #: status the fake answered with
    started_at: float  #: time.monotonic() when received


@dataclass(frozen=True)
class FakeStats:
    """A snapshot of the counters. `in_flight` and `held` are live gauges that `reset()` keeps.

    `total` and `statuses` count every API call, batch endpoints included; `in_flight`, `held` and the
    cache counters are about /v1/messages.
    """

    total: int
    in_flight: int
    max_in_flight: int
    held: int
    statuses: dict[int, int]
    cache_writes: int
    cache_reads: int
    batches: int = 0  #: Message Batches created
    batch_requests: int = 0  #: requests in them
    batches_canceled: int = 0  #: batches cancelled while in progress
    batch_calls: dict[str, int] = field(default_factory=dict[str, int])  #: calls by batch endpoint


class DroppedConnection(Exception):
    """Raised inside the fake so that uvicorn aborts the connection mid-body ([[drop]])."""

    fake_api_drop = True  # read by the log filter, which must not depend on module identity


class _QuietDrops(logging.Filter):
    """Hides uvicorn's "Exception in ASGI application" record for deliberate drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not getattr(exc, "fake_api_drop", False)


class _ApiError(Exception):
    def __init__(
        self, status: int, message: str, *, type_: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.type = type_ or ERROR_TYPES.get(status, "api_error")
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "error": {"type": self.type, "message": self.message}}
        return body if request_id is None else body | {"request_id": request_id}


def _auth_refusal(headers: dict[str, str], config: FakeConfig) -> _ApiError | None:
    """The API's 401 for a request without credentials, or with a key it does not accept."""
    auth = headers.get("authorization", "")
    key = (auth[7:].strip() if auth.startswith("Bearer ") else "") or headers.get("x-api-key", "")
    if config.require_auth and (not key or (config.api_keys is not None and key not in config.api_keys)):
        return _ApiError(401, "invalid x-api-key")
    return None


def _check_auth(headers: dict[str, str], config: FakeConfig) -> None:
    refusal = _auth_refusal(headers, config)
    if refusal is not None:
        raise refusal


def _json_object(raw: bytes) -> dict[str, Any]:
    parsed: object = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
    if not isinstance(parsed, dict):
        raise _ApiError(400, "the request body must be a JSON object")
    return cast("dict[str, Any]", parsed)


@dataclass
class _Plan:
    """Everything decided about a request when it arrives; its response is sent from this."""

    latency: float
    headers: dict[str, str] = field(default_factory=lambda: {"request-id": f"req_{uuid.uuid4().hex[:24]}"})
    error: _ApiError | None = None
    admitted: bool = False  # holds a max_concurrency slot
    stream: bool = False
    model: str = ""
    text: str = ""
    tool_uses: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=dict[str, int])
    cache_key: str | None = None
    cache_write: bool = False
    hold: bool = False
    hold_after: int | None = None
    error_after: int | None = None
    error_type: str = "overloaded_error"
    drop_after: int | None = None
    truncate_after: int | None = None

    @property
    def status(self) -> int:
        return 200 if self.error is None else self.error.status


# --------------------------------------------------------------------------- request parsing


def _blocks(value: object) -> list[dict[str, Any]]:
    """The objects in a JSON list: content blocks, system blocks or messages."""
    items = cast("list[object]", value) if isinstance(value, list) else []
    return [cast("dict[str, Any]", item) for item in items if isinstance(item, dict)]


def _texts(content: object) -> list[str]:
    """The text of a message or system content: a string, or its text blocks."""
    if isinstance(content, str):
        return [content]
    return [str(b.get("text", "")) for b in _blocks(content) if b.get("type", "text") == "text"]


def _has(content: object, kind: str) -> bool:
    return any(block.get("type") == kind for block in _blocks(content))


def _tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for message in messages:
        for block in _blocks(message["content"]) if message.get("role") == "user" else []:
            if block.get("type") == "tool_result":
                content = block.get("content")
                text = content if isinstance(content, str) else "".join(_texts(content))
                found.append({"is_error": block.get("is_error") is True, "content": text})
    return found


def _tool_rounds(found: dict[str, str]) -> list[list[dict[str, Any]]]:
    if "tools64" not in found:
        return []
    try:
        rounds = json.loads(_unbase64("tools64", found["tools64"]))
        return [[{"name": str(c["name"]), "input": dict(c["input"])} for c in r] for r in rounds]
    except (ValueError, KeyError, TypeError):
        raise _ApiError(400, "fake: [[tools64]] must hold a JSON list of lists of {name, input}") from None


def _chars(content: object) -> int:
    """Characters of the content's text, plus the JSON of its non-text blocks."""
    other = [b for b in _blocks(content) if b.get("type", "text") != "text"]
    return sum(map(len, _texts(content))) + sum(len(json.dumps(b)) for b in other)


def _objects(value: object) -> bool:
    """True for a non-empty JSON list of objects."""
    items = cast("list[object]", value) if isinstance(value, list) else []
    return 0 < len(_blocks(items)) == len(items)


def _validate(body: dict[str, Any]) -> None:
    model, max_tokens, messages, system = (body.get(k) for k in ("model", "max_tokens", "messages", "system"))
    if not isinstance(model, str) or not model:
        raise _ApiError(400, "model: Field required (a non-empty string)")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _ApiError(400, "max_tokens: must be an integer >= 1")
    if not _objects(messages):
        raise _ApiError(400, "messages: must be a non-empty list of objects")
    if not all(isinstance(m.get("content"), str | list) for m in _blocks(messages)):
        raise _ApiError(400, "messages: each must have a string or list content")
    if not (system is None or isinstance(system, str) or system == [] or _objects(system)):
        raise _ApiError(400, "system: must be a string or a list of text blocks")
    uses_tools = any(
        _has(m.get("content"), kind) for m in _blocks(messages) for kind in ("tool_use", "tool_result")
    )
    if uses_tools and not _objects(body.get("tools")):
        raise _ApiError(400, "messages: tool_use and tool_result blocks need the tools they use, in `tools`")


def _directives(messages: list[dict[str, Any]]) -> dict[str, str]:
    """The directives in the user messages' text; a later one replaces an earlier one of its name."""
    found: dict[str, str] = {}
    for message in messages:
        for text in _texts(message["content"]) if message.get("role") == "user" else []:
            found.update((m.group(1), m.group(2) or "") for m in _DIRECTIVE.finditer(text))
    return found


def _unbase64(name: str, raw: str) -> str:
    try:
        return base64.b64decode(raw.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise _ApiError(400, f"directive [[{name}]] is not valid base64 of UTF-8 text") from None


def _args(name: str, raw: str) -> dict[str, str]:
    """Parse `POSITIONAL;key=value;key=value`; the positional part is stored under the key ""."""
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        key, eq, value = part.partition("=")
        if not eq and "" in options:
            raise _ApiError(400, f"fake directive [[{name}]]: unexpected {part!r}")
        options[key.strip().lower() if eq else ""] = value.strip() if eq else part
    return options


def _number(name: str, value: str | None, kind: Callable[[str], _T]) -> _T:
    try:
        return kind(value or "")
    except ValueError:
        raise _ApiError(400, f"fake directive [[{name}]]: bad number {value!r}") from None


def _truncate(text: str, max_tokens: int) -> tuple[str, int, str]:
    """Cut `text` to `max_tokens` words; returns (text, output_tokens, stop_reason)."""
    words = list(re.finditer(r"\S+", text))
    if len(words) > max_tokens:
        return text[: words[max_tokens - 1].end()], max_tokens, "max_tokens"
    return text, max(1, len(words)), "end_turn"


def _chunks(text: str, words_per_chunk: int) -> list[str]:
    """Split `text` into deltas of N words (with their leading whitespace) that join back to `text`."""
    pieces: list[str] = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    pieces[-1] += text[len("".join(pieces)) :]
    n = max(1, words_per_chunk)
    return ["".join(pieces[i : i + n]) for i in range(0, len(pieces), n)]


def _rate_headers(limit: int, remaining: int, reset_in: float, tokens: int) -> dict[str, str]:
    """The headers the API sends on every answer: requests left in the window and when it is whole
    again (RFC 3339; with milliseconds, which a shortened benchmark window needs), and the token limits
    (announced whole: the fake does not count tokens)."""
    reset = (datetime.now(UTC) + timedelta(seconds=reset_in)).isoformat(timespec="milliseconds")
    headers = {
        "anthropic-ratelimit-requests-limit": str(limit),
        "anthropic-ratelimit-requests-remaining": str(remaining),
        "anthropic-ratelimit-requests-reset": reset.replace("+00:00", "Z"),
    }
    for kind in ("tokens", "input-tokens", "output-tokens"):
        headers[f"anthropic-ratelimit-{kind}-limit"] = headers[f"anthropic-ratelimit-{kind}-remaining"] = str(
            tokens
        )
        headers[f"anthropic-ratelimit-{kind}-reset"] = headers["anthropic-ratelimit-requests-reset"]
    return headers


# --------------------------------------------------------------------------- the fake


class FakeApi:
    """A fake Messages API on 127.0.0.1: its state, its counters and its server thread.

    Create it with `serve_in_thread()`, stop it with `stop()`. Every public method is thread-safe; the
    `wait_*` methods block (call them through `anyio.to_thread.run_sync` from async tests).

    Attributes:
        base_url: `http://127.0.0.1:PORT`, without a trailing slash.
        config: the live `FakeConfig`; tests assign its fields between requests.
        script: None, or a function that plays the model: given a request's body (called on the server's
            loop, under the fake's lock: keep it quick), it returns the answer's text, or a list of tool
            calls `{"name": ..., "input": {...}}` to answer with (stop_reason "tool_use"), or None to
            answer as usual. Errors and latency directives still apply first. `reset()` removes it.
    """

    def __init__(self, config: FakeConfig | None = None, *, port: int = 0) -> None:
        self.config = config or FakeConfig()
        self.script: Script | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate_open, self._gate = False, asyncio.Event()
        self._in_flight = self._held = self._active = 0
        self._batches = BatchStore(self)
        self._clear()
        self._socket = _listen(port)
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        logger = logging.getLogger("uvicorn.error")
        if not any(type(f).__name__ == _QuietDrops.__name__ for f in logger.filters):
            logger.addFilter(_QuietDrops())
        uv_config = uvicorn.Config(
            _build_app(self),
            http="h11",
            loop="asyncio",
            ws="none",
            lifespan="off",
            log_config=None,  # leave the process's logging alone; records propagate to the root logger
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(uv_config)
        self._thread = threading.Thread(target=self._run, name=f"fake-api-{self.base_url}", daemon=True)

    def _clear(self) -> None:
        self._records: list[RecordedRequest] = []
        self._token_counts: list[RecordedRequest] = []
        self._statuses: dict[int, int] = {}
        self._attempts: dict[str, int] = {}
        self._window: deque[float] = deque()  # admission times within the rate window
        self._cache: dict[str, bool] = {}  # key -> readable (False: a write is pending)
        self._cache_writes = self._cache_reads = 0
        self._max_in_flight = self._in_flight
        self._batches.clear()

    # -- public API

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests (/v1/messages and batch endpoints), in arrival order."""
        with self._lock:
            return list(self._records)

    @property
    def token_counts(self) -> list[RecordedRequest]:
        """A copy of the recorded count_tokens requests, in arrival order."""
        with self._lock:
            return list(self._token_counts)

    def stats(self) -> FakeStats:
        """A snapshot of the counters."""
        batches, batch_requests, batches_canceled, batch_calls = self._batches.counts()  # not under our lock
        with self._lock:
            return FakeStats(
                total=len(self._records),
                in_flight=self._in_flight,
                max_in_flight=self._max_in_flight,
                held=self._held,
                statuses=dict(self._statuses),
                cache_writes=self._cache_writes,
                cache_reads=self._cache_reads,
                batches=batches,
                batch_requests=batch_requests,
                batches_canceled=batches_canceled,
                batch_calls=batch_calls,
            )

    def reset(self) -> None:
        """Clear recordings, counters, attempts, rate window and cache; re-arm the gate; default config.

        Requests still held from before are let through, so they cannot hang. The gauges `in_flight`
        and `held` describe live requests and are kept; `max_in_flight` restarts from `in_flight`.
        """
        with self._lock:
            self._clear()
            self.config, self.script = FakeConfig(), None
            stale, self._gate, self._gate_open = self._gate, asyncio.Event(), False
            self._changed.notify_all()
        self._wake(stale)

    def release(self) -> None:
        """Open the hold gate: held requests, and later ones until `rearm()`/`reset()`, proceed."""
        with self._lock:
            self._gate_open = True
            gate = self._gate
        self._wake(gate)

    def rearm(self) -> None:
        """Close the hold gate again."""
        with self._lock:
            if self._gate_open:
                self._gate, self._gate_open = asyncio.Event(), False

    def wait_held(self, n: int, timeout: float) -> bool:
        """Block until at least `n` requests wait at the hold gate. False on timeout."""
        return self._wait_for(lambda: self._held >= n, timeout)

    def wait_requests(self, n: int, timeout: float) -> bool:
        """Block until at least `n` requests were received (batch calls included). False on timeout."""
        return self._wait_for(lambda: len(self._records) >= n, timeout)

    def wait_batch_calls(self, endpoint: str, n: int, timeout: float) -> bool:
        """Block until `endpoint` (create, retrieve, cancel, results, ...) answered `n` batch calls."""
        return self._wait_for(lambda: self._batches.calls(endpoint) >= n, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no /v1/messages request is in flight. False on timeout."""
        return self._wait_for(lambda: self._in_flight == 0, timeout)

    def start(self, timeout: float = 10.0) -> None:
        """Start the server thread; return once it accepts connections.

        Raises:
            RuntimeError: the server did not start within `timeout`.
        """
        self._thread.start()
        if not self._server.ready.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError("the fake Anthropic API did not start")

    def stop(self) -> None:
        """Release held requests, shut uvicorn down (about 1 s of grace) and join its thread."""
        self.release()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()  # uvicorn closed it already unless the start failed

    # -- shared-state helpers

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _wake(self, gate: asyncio.Event) -> None:
        if self._loop is None:
            gate.set()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
            self._loop.call_soon_threadsafe(gate.set)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._changed.notify_all()

    def _leave(self, plan: _Plan | None) -> None:
        with self._lock:
            self._in_flight -= 1
            if plan is not None and plan.admitted:
                self._active -= 1
            self._changed.notify_all()

    async def _wait_gate(self) -> None:
        """Wait at the hold gate, counted in `held`, unless it is open."""
        with self._lock:
            if self._gate_open:
                return
            gate = self._gate
            self._held += 1
            self._changed.notify_all()
        try:
            await gate.wait()
        finally:
            with self._lock:
                self._held -= 1
                self._changed.notify_all()

    def _usage_sent(self, plan: _Plan) -> None:
        """A response has sent its usage: count it, and make a key it wrote readable."""
        if plan.cache_key is not None:
            with self._lock:
                if plan.cache_write:
                    self._cache[plan.cache_key] = True
                    self._cache_writes += 1
                else:
                    self._cache_reads += 1

    # -- the BatchHost side of tests/fake_batches.py (server loop)

    def _batch_refusal(self, endpoint: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            refusal = _auth_refusal(headers, self.config)
            if refusal is not None:
                return 401, refusal.body()
            planned = self.config.batch_failures.get(endpoint)
            if not planned:
                return None
            status = planned.pop(0)
        return status, _ApiError(status, f"fake failure ({status}) of batch {endpoint}").body()

    def _batch_result(self, params: object) -> tuple[dict[str, Any], bool]:
        config, plan = self.config, _Plan(latency=0.0)
        with self._lock:
            try:
                if not isinstance(params, dict):
                    raise _ApiError(400, "params: must be an object")
                body = cast("dict[str, Any]", params)
                _validate(body)
                if body.get("stream") is True:
                    raise _ApiError(400, "stream: a request of a message batch cannot be streamed")
                batch = _args("batch", _directives(body["messages"]).get("batch", ""))
                outcome = batch.get("")
                if outcome == "expired":
                    return {"type": "expired"}, False
                if outcome == "errored":
                    message = batch.get("message", "fake batch error")
                    raise _ApiError(500, message, type_=batch.get("type", "api_error"))
                if outcome not in (None, "hold"):
                    raise _ApiError(400, f"fake directive [[batch]]: unknown outcome {outcome!r}")
                self._apply(plan, body, config)
            except _ApiError as error:
                return {
                    "type": "errored",
                    "error": error.body() | {"request_id": plan.headers["request-id"]},
                }, False
        self._usage_sent(plan)
        message = _MessagesEndpoint._message_json(plan, streaming=False)
        message["usage"] = {**message["usage"], "service_tier": "batch"}
        return {"type": "succeeded", "message": message}, plan.hold or outcome == "hold"

    def _batch_timing(self) -> tuple[float, bool]:
        return self.config.batch_delay_s, self._gate_open  # plain reads: no lock (see BatchStore._find)

    def _batch_record(
        self, path: str, headers: dict[str, str], body: dict[str, Any], status: int, started_at: float
    ) -> None:
        with self._lock:
            self._records.append(RecordedRequest(path, headers, body, status, started_at))
            self._statuses[status] = self._statuses.get(status, 0) + 1
            self._changed.notify_all()

    # -- deciding a request (server loop)

    def _plan(self, path: str, headers: dict[str, str], raw: bytes, started_at: float) -> _Plan:
        """Decide the outcome of one request and record it."""
        config = self.config
        plan = _Plan(latency=config.latency)
        body: dict[str, Any] = {}
        with self._lock:
            try:
                body = _json_object(raw)
                _check_auth(headers, config)
                _validate(body)
                try:
                    self._admit(plan, config)
                except _ApiError:
                    plan.latency = 0.0  # a limiter answers at once: it generates nothing
                    raise
                self._apply(plan, body, config)
            except _ApiError as error:
                plan.error = error
                plan.headers.update(error.headers)
            self._records.append(RecordedRequest(path, headers, body, plan.status, started_at))
            self._statuses[plan.status] = self._statuses.get(plan.status, 0) + 1
            self._changed.notify_all()
        return plan

    def _count(self, path: str, headers: dict[str, str], raw: bytes, started_at: float) -> tuple[int, Any]:
        """Answer one count_tokens request and record it: (status, JSON body)."""
        body: dict[str, Any] = {}
        with self._lock:
            try:
                body = _json_object(raw)
                _check_auth(headers, self.config)
                _validate(body | {"max_tokens": 1})  # count_tokens takes no max_tokens
                messages = _blocks(body["messages"])
                chars = _chars(body.get("system")) + sum(_chars(m.get("content")) for m in messages)
                status, answer = 200, {"input_tokens": max(1, math.ceil(chars / 4))}
            except _ApiError as error:
                status, answer = error.status, error.body(f"req_{uuid.uuid4().hex[:24]}")
            self._token_counts.append(RecordedRequest(path, headers, body, status, started_at))
            self._changed.notify_all()
        return status, answer

    def _admit(self, plan: _Plan, config: FakeConfig) -> None:
        """Apply max_concurrency, then rpm_limit. Caller holds the lock."""
        if config.max_concurrency is not None and self._active >= config.max_concurrency:
            raise _ApiError(529, "Overloaded")
        limit = config.rpm_limit if config.rpm_limit is not None else config.announced_rpm
        now, window, span = time.monotonic(), self._window, config.rate_window_s
        while window and window[0] <= now - span:
            window.popleft()
        if config.rpm_limit is not None and len(window) >= limit:
            wait = window[0] + span - now  # when the oldest admission leaves the window
            plan.headers.update(_rate_headers(limit, 0, wait, config.announced_tpm))
            # Whole seconds, as the API sends, in the real 60 s window; tenths in a shortened one.
            after = max(1, math.ceil(wait)) if span >= _RATE_WINDOW else max(0.1, math.ceil(wait * 10) / 10)
            raise _ApiError(
                429,
                f"Number of requests has exceeded your limit ({limit} per {span:g} s)",
                headers={"retry-after": str(after)},
            )
        window.append(now)
        remaining = max(0, limit - len(window))
        plan.headers.update(_rate_headers(limit, remaining, window[0] + span - now, config.announced_tpm))
        self._active += 1
        plan.admitted = True

    def _apply(self, plan: _Plan, body: dict[str, Any], config: FakeConfig) -> None:
        """Apply the directives; compute reply and usage. Caller holds the lock."""
        model, system, messages = body["model"], body.get("system"), body["messages"]
        found = _directives(messages)
        identity = hashlib.sha256(json.dumps([model, system, messages], sort_keys=True).encode()).hexdigest()
        attempt = self._attempts[identity] = self._attempts.get(identity, 0) + 1
        plan.stream, plan.model = body.get("stream") is True, model
        faults = _armed_faults(found, attempt)
        after = _after(faults)
        _plan_pauses(plan, faults, after)  # before a [[fail]] raises: its error waits for them too
        _plan_breaks(plan, faults, after)
        scripted = self.script(body) if self.script is not None else None
        tool_uses = _tool_uses_due(body, found, scripted)
        if tool_uses is not None:
            plan.tool_uses = tool_uses
            plan.text, plan.stop_reason = "", "tool_use"
            plan.usage = self._input_usage(plan, system, messages, config) | {"output_tokens": 10}
            return
        text = scripted if isinstance(scripted, str) else _directed_reply(body, found, config)
        plan.text, output_tokens, plan.stop_reason = _truncate(text, body["max_tokens"])
        plan.usage = self._input_usage(plan, system, messages, config) | {"output_tokens": output_tokens}

    def _input_usage(
        self, plan: _Plan, system: Any, messages: list[Any], config: FakeConfig
    ) -> dict[str, int]:
        """Split the input tokens into uncached, cache-written and cache-read. Caller holds the lock."""
        total = max(1, math.ceil((_chars(system) + sum(_chars(m["content"]) for m in messages)) / 4))
        blocks = _blocks(system)
        marked = [i for i, block in enumerate(blocks) if block.get("cache_control")]
        prefix = [str(block.get("text", "")) for block in blocks[: marked[-1] + 1]] if marked else []
        prefix_tokens = math.ceil(sum(map(len, prefix)) / 4)
        written = read = 0
        if prefix and prefix_tokens >= config.min_cache_tokens:
            plan.cache_key = hashlib.sha256((plan.model + json.dumps(prefix)).encode()).hexdigest()
            if self._cache.get(plan.cache_key):
                read = prefix_tokens
            else:
                plan.cache_write, written = True, prefix_tokens
                self._cache.setdefault(plan.cache_key, False)
        return {
            "input_tokens": total - written - read,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }

    # -- serving

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            self._server.ready.set()  # unblock start() if serving failed

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._socket])


_FAULTS: Final = ("latency", "fail", "stream_error", "drop", "hold", "truncate")


def _armed_faults(found: dict[str, str], attempt: int) -> dict[str, dict[str, str]]:
    """The fault directives that apply to this attempt, by name: a `count=N` one only to the first N."""
    faults: dict[str, dict[str, str]] = {}
    for name in _FAULTS:
        if name in found:
            faults[name] = _args(name, found[name])
            count = faults[name].get("count")
            if count is not None and attempt > _number(name, count, int):
                del faults[name]
    return faults


def _after(faults: dict[str, dict[str, str]]) -> dict[str, int]:
    """The `after=N` (chunks) of each fault that has one."""
    return {name: _number(name, fault["after"], int) for name, fault in faults.items() if "after" in fault}


def _plan_pauses(plan: _Plan, faults: dict[str, dict[str, str]], after: dict[str, int]) -> None:
    """[[latency]] and [[hold]]: when the response starts, and where a stream waits for the gate."""
    if "latency" in faults:
        plan.latency = _number("latency", faults["latency"].get(""), float)
    if "hold" in faults:
        plan.hold = "hold" not in after or not plan.stream
        plan.hold_after = after.get("hold") if plan.stream else None


def _plan_breaks(plan: _Plan, faults: dict[str, dict[str, str]], after: dict[str, int]) -> None:
    """[[fail]] raises its error; [[stream_error]], [[truncate]] (streams only) and [[drop]] mark where
    the response breaks off."""
    if "fail" in faults:
        raise _fail_error(_number("fail", faults["fail"].get(""), int), faults["fail"])
    if "stream_error" in faults and plan.stream:
        plan.error_after = after.get("stream_error", 0)
        plan.error_type = faults["stream_error"].get("type", "overloaded_error")
    if "truncate" in faults and plan.stream:
        plan.truncate_after = after.get("truncate", 0)
    if "drop" in faults:
        plan.drop_after = after.get("drop", 0)


def _tool_uses_due(
    body: dict[str, Any], found: dict[str, str], scripted: str | list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    """The tool calls this turn answers with ([[tools64]] rounds, or a script's list), or None when it
    answers in text: every round is answered, or the request forbids tools."""
    messages = body["messages"]
    rounds = _tool_rounds(found)
    answered = sum(1 for m in messages if m.get("role") == "user" and _has(m["content"], "tool_result"))
    if isinstance(scripted, list):
        rounds, answered = [scripted], 0
    choice: dict[str, Any] = body.get("tool_choice") or {}
    if answered >= len(rounds) or choice.get("type") == "none":
        return None
    return [
        {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": c["name"], "input": c["input"]}
        for c in rounds[answered]
    ]


def _directed_reply(body: dict[str, Any], found: dict[str, str], config: FakeConfig) -> str:
    """The answer's text as the directives ask: an echo of the tool results, [[then]] after the first
    turn, [[reply]], an answer to the requested schema, or [[words]] (else the configured) words."""
    messages = body["messages"]
    if "tool_echo" in found:
        return json.dumps(_tool_results(messages))
    turns = sum(1 for message in messages if message.get("role") == "user")
    if turns > 1 and ("then" in found or "then64" in found):
        return found["then"] if "then" in found else _unbase64("then64", found["then64"])
    if "reply64" in found:
        return _unbase64("reply64", found["reply64"])
    if "reply" in found:
        return found["reply"]
    if (schema := wanted_schema(body)) is not None and not {"words", "then", "then64"} & found.keys():
        prompt = "\n".join(t for m in messages if m.get("role") == "user" for t in _texts(m["content"]))
        return schema_answer(schema, prompt)
    words = _number("words", found["words"], int) if "words" in found else config.default_words
    return " ".join(f"w{i}" for i in range(1, words + 1))


def _fail_error(status: int, options: dict[str, str]) -> _ApiError:
    headers = {name: options[name] for name in ("retry-after", "retry-after-ms") if name in options}
    if "should-retry" in options:
        headers["x-should-retry"] = options["should-retry"].lower()
    message = options.get("message", f"fake failure ({status})")
    return _ApiError(status, message, type_=options.get("type"), headers=headers)


# --------------------------------------------------------------------------- ASGI side


async def _start(
    send: Send, status: int, headers: dict[str, str], content_type: str, length: int = -1
) -> None:
    raw = [(b"content-type", content_type.encode())]
    if length >= 0:
        raw.append((b"content-length", str(length).encode()))
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _body(send: Send, data: bytes, *, more: bool) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _sse(send: Send, data: dict[str, Any], *, more: bool = True) -> None:
    """Send one SSE frame; the event name is the payload's `type`, as the API does."""
    await _body(send, f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode(), more=more)


async def _unless_disconnected(receive: Receive, work: Callable[[], Awaitable[_T]]) -> _T | None:
    """Run `work`, cancelling it if the client disconnects first (then return None).

    uvicorn's `send()` silently ignores a vanished client, so without this watcher a held or slow
    request would stay in flight after its client went away.
    """
    result: list[_T] = []
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch)
        result.append(await work())
        group.cancel_scope.cancel()
    return result[0] if result else None


class _MessagesEndpoint:
    """`POST /v1/messages` as a raw ASGI app, so that `in_flight` covers the whole response body."""

    def __init__(self, fake: FakeApi) -> None:
        self._fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fake, started_at = self._fake, time.monotonic()
        plan: _Plan | None = None
        fake._enter()
        try:
            try:
                raw = await Request(scope, receive).body()
            except ClientDisconnect:
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            plan = fake._plan(scope["path"], headers, raw, started_at)
            drop = await _unless_disconnected(receive, lambda: self._respond(plan, send))
        finally:
            fake._leave(plan)
        if drop:
            raise DroppedConnection("fake [[drop]]: aborting the connection mid-body")

    async def _respond(self, plan: _Plan, send: Send) -> bool:
        """Send the planned response. Returns True when the connection must be dropped."""
        if plan.latency > 0:
            await anyio.sleep(plan.latency)
        if plan.hold:
            await self._fake._wait_gate()
        if plan.error is not None:
            data = json.dumps(plan.error.body(plan.headers["request-id"])).encode()
            await _start(send, plan.status, plan.headers, "application/json", len(data))
            await _body(send, data, more=False)
            return False
        return await (self._stream(plan, send) if plan.stream else self._message(plan, send))

    @staticmethod
    def _message_json(plan: _Plan, *, streaming: bool) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": [] if streaming else _content(plan),
            "stop_reason": None if streaming else plan.stop_reason,
            "stop_sequence": None,
            "usage": plan.usage | {"output_tokens": 1} if streaming else plan.usage,
        }

    async def _message(self, plan: _Plan, send: Send) -> bool:
        data = json.dumps(self._message_json(plan, streaming=False)).encode()
        await _start(send, 200, plan.headers, "application/json", len(data))
        if plan.drop_after is not None:
            await _body(send, data[: len(data) // 2], more=True)
            return True
        self._fake._usage_sent(plan)  # before the last byte, so a finished client sees the count
        await _body(send, data, more=False)
        return False

    async def _stream(self, plan: _Plan, send: Send) -> bool:
        config = self._fake.config
        await _start(
            send, 200, plan.headers | {"cache-control": "no-cache"}, "text/event-stream; charset=utf-8"
        )
        await _sse(send, {"type": "message_start", "message": self._message_json(plan, streaming=True)})
        self._fake._usage_sent(plan)
        await _sse(
            send, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        )
        await _sse(send, {"type": "ping"})
        chunks = _chunks(plan.text, config.chunk_words)
        pauses = (
            ("hold", plan.hold_after),
            ("error", plan.error_after),
            ("drop", plan.drop_after),
            ("truncate", plan.truncate_after),
        )
        stop_at = {name: min(after, len(chunks)) for name, after in pauses if after is not None}
        for i in range(len(chunks) + 1):
            if stop_at.get("hold") == i:
                await self._fake._wait_gate()
            if stop_at.get("error") == i:
                await _sse(send, _ApiError(529, "Overloaded", type_=plan.error_type).body(), more=False)
                return False
            if stop_at.get("truncate") == i:
                await _body(send, b"", more=False)
                return False
            if stop_at.get("drop") == i:
                return True
            if i == len(chunks):
                break
            if i and config.chunk_delay > 0:
                await anyio.sleep(config.chunk_delay)
            delta = {"type": "text_delta", "text": chunks[i]}
            await _sse(send, {"type": "content_block_delta", "index": 0, "delta": delta})
        await _sse(send, {"type": "content_block_stop", "index": 0})
        for index, use in enumerate(plan.tool_uses, 1):
            start: dict[str, Any] = {"type": "tool_use", "id": use["id"], "name": use["name"], "input": {}}
            await _sse(send, {"type": "content_block_start", "index": index, "content_block": start})
            raw = json.dumps(use["input"])
            for part in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):  # as the API does: in pieces
                delta = {"type": "input_json_delta", "partial_json": part}
                await _sse(send, {"type": "content_block_delta", "index": index, "delta": delta})
            await _sse(send, {"type": "content_block_stop", "index": index})
        usage = {"output_tokens": plan.usage["output_tokens"]}
        delta = {"stop_reason": plan.stop_reason, "stop_sequence": None}
        await _sse(send, {"type": "message_delta", "delta": delta, "usage": usage})
        await _sse(send, {"type": "message_stop"}, more=False)
        return False


def _content(plan: _Plan) -> list[dict[str, Any]]:
    text = [{"type": "text", "text": plan.text}] if plan.text or not plan.tool_uses else []
    return text + plan.tool_uses


def _build_app(fake: FakeApi) -> Starlette:
    """The Starlette app: the Messages endpoint, the models page and the `/_fake` control plane."""
    actions: dict[str, Callable[[], None]] = {
        "reset": fake.reset,
        "release": fake.release,
        "rearm": fake.rearm,
    }

    async def models(_: Request) -> Response:
        return JSONResponse(MODELS_PAGE, headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})

    async def count_tokens(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, body = fake._count(request.url.path, headers, await request.body(), time.monotonic())
        return JSONResponse(body, status_code=status, headers={"request-id": f"req_{uuid.uuid4().hex[:24]}"})

    async def stats(_: Request) -> Response:
        return JSONResponse(dataclasses.asdict(fake.stats()))

    async def action(request: Request) -> Response:
        name = request.path_params["action"]
        if name not in actions:
            raise HTTPException(404, f"no control action {name!r}")
        actions[name]()
        return JSONResponse({"ok": True})

    async def configure(request: Request) -> Response:
        changes: Any = None
        with contextlib.suppress(ValueError):
            changes = await request.json()
        names = {f.name for f in dataclasses.fields(FakeConfig)}
        if not isinstance(changes, dict) or not set(cast("dict[str, Any]", changes)) <= names:
            raise HTTPException(400, f"expected a JSON object with keys among {sorted(names)}")
        for name, value in cast("dict[str, Any]", changes).items():
            setattr(fake.config, name, value)
        return JSONResponse(dataclasses.asdict(fake.config))

    async def http_error(_: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        error = _ApiError(status, str(getattr(exc, "detail", exc)))
        return JSONResponse(error.body(), status_code=status)

    routes = [
        Route("/v1/messages", _MessagesEndpoint(fake), methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", models),
        *fake._batches.routes(),
        Route("/_fake/stats", stats),
        Route("/_fake/config", configure, methods=["POST"]),
        Route("/_fake/{action}", action, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


# --------------------------------------------------------------------------- serving


class _Server(uvicorn.Server):
    """A uvicorn server that tells another thread once it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _listen(port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the listener's proto
    # is IPPROTO_TCP. Without it, Nagle + delayed ACK add ~40 ms to every keep-alive request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def serve_in_thread(config: FakeConfig | None = None, *, port: int = 0) -> FakeApi:
    """Start a fake on 127.0.0.1 (a free port by default); return once it accepts connections."""
    fake = FakeApi(config, port=port)
    fake.start()
    return fake


def main(argv: list[str] | None = None) -> int:
    """Command line: print `FAKE_API_URL=...`, then serve until SIGTERM or SIGINT; or, given a command
    after `--`, run it against the fake and exit with its status."""
    parser = argparse.ArgumentParser(description="A fake Anthropic Messages API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rpm-limit", type=int, default=None)
    parser.add_argument("--rate-window", type=float, default=_RATE_WINDOW, help="seconds rpm-limit counts in")
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--chunk-words", type=int, default=3)
    parser.add_argument("--no-auth", action="store_true", help="accept requests without credentials")
    parser.add_argument(
        "command",
        nargs="*",
        help="after --: a command to run with ANTHROPIC_BASE_URL set to the fake and ANTHROPIC_API_KEY=fake; "
        "the fake stops when it ends, with its exit status",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    config = FakeConfig(
        latency=args.latency,
        chunk_words=args.chunk_words,
        chunk_delay=args.chunk_delay,
        rpm_limit=args.rpm_limit,
        rate_window_s=args.rate_window,
        max_concurrency=args.max_concurrency,
        require_auth=not args.no_auth,
    )
    fake = serve_in_thread(config, port=args.port)
    try:
        if args.command:
            return _run_against(fake, args.command)
        sys.stdout.write(f"FAKE_API_URL={fake.base_url}\n")
        sys.stdout.flush()
        stop.wait()
        return 0
    finally:
        fake.stop()


def _run_against(fake: FakeApi, command: list[str]) -> int:
    """Run `command` with the Anthropic SDK's variables pointing at the fake (a key of the caller's
    never goes to it); its output is its own, the fake's address goes to stderr."""
    sys.stderr.write(f"FAKE_API_URL={fake.base_url}\n")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_AUTH_TOKEN"}
    env |= {"ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "fake"}
    try:
        return subprocess.run(command, env=env, check=False).returncode
    except OSError as exc:
        sys.stderr.write(f"fake_api: cannot run {command[0]}: {exc}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main())
