"""One streamed Messages call, its answer read straight from the response's bytes.

The SDK builds and sends the request (credentials, headers, base URL, timeouts) and raises its own typed
errors for an error status, as for any call; the body is read here instead of through the SDK's stream
of event objects, which cost more CPU than everything else the server does per task (an SSE decoder
line by line, then a pydantic object per event). Here each event costs one JSON parse (``_json``), and
only what a subagent's answer needs is read: ``message_start`` (model, usage), ``content_block_start``
(a tool use's id and name), ``content_block_delta`` (text, a tool input's JSON), ``message_delta``
(stop reason, usage) and ``message_stop`` (the answer is whole); the rest (``content_block_stop``,
thinking) is skipped.

A fault surfaces as the SDK's own stream raises it, so that ``faults.classify`` says the same about it
(tests/server/backends/test_answer_stream.py holds the two readers side by side): ``ping`` and events
without a name or data are skipped; an ``error`` event raises ``anthropic.APIStatusError`` (status 200,
the error in its body); data that is not JSON raises ``ValueError``, as does an event of the wrong shape;
a failed read raises httpx's error. A stream that closes cleanly before ``message_stop`` is a
``Transient`` fault here: an answer cut short is never passed off as done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import httpx2
import pydantic_core

from ..core.models import SubagentResult, Tokens
from . import TaskSink
from .faults import Transient
from .sse import EventFrames
from .tooluse import Reply, ToolUse

_CLOSE_WAIT_S = 2.0  #: a cancelled call waits this long at most to hand its connection back


async def stream_answer(
    client: anthropic.AsyncAnthropic,
    params: dict[str, Any],
    model: str,
    sink: TaskSink,
    answered: Callable[[httpx2.Headers], None],
) -> Reply:
    """One streamed call with ``params``. ``answered`` gets the response's headers as soon as they
    arrive; the text goes to ``sink`` as it streams in, and the call's usage once the stream ends, even
    when it broke off (a failed attempt is billed too). ``model`` is the one asked for: the answer
    names the one that ran.

    Raises:
        Transient: the stream ended cleanly before the answer did.
        Exception: what the SDK raises for the request, and the stream's faults (see above).
    """
    reading = _Reading(client, model, sink)
    try:
        raw = await client.messages.with_raw_response.create(**params, stream=True)
        try:
            answered(raw.headers)
            await reading.read(raw.http_response)
        finally:
            with anyio.move_on_after(_CLOSE_WAIT_S, shield=True):
                await raw.close()
    finally:
        reading.report_usage()
    if not reading.ended:  # the stream closed cleanly but early (a proxy cut it)
        raise Transient("the answer stream ended before the answer did", None, pushback=False)
    return reading.reply()


def tokens_of(usage: Any) -> Tokens:
    """A provider ``Usage`` object (of a whole message) as ``Tokens``."""
    return Tokens(
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        usage.cache_creation_input_tokens or 0,
        usage.cache_read_input_tokens or 0,
    )


class _Reading:
    """What the events of one answer said so far."""

    __slots__ = ("_client", "_sink", "_usage", "_uses", "chunks", "ended", "model", "stop_reason")

    def __init__(self, client: anthropic.AsyncAnthropic, model: str, sink: TaskSink) -> None:
        self._client = client
        self._sink = sink
        self._uses: dict[int, ToolUse] = {}  #: the tool_use blocks, by their index in the content
        self._usage = _Usage()
        self.chunks: list[str] = []
        self.model = model
        self.stop_reason: str | None = None
        self.ended = False

    async def read(self, response: httpx2.Response) -> None:
        frames = EventFrames()
        async for chunk in response.aiter_bytes():
            for name, data in frames.feed(chunk):
                self._take(name, data, response)
        for name, data in frames.end():
            self._take(name, data, response)

    def _take(self, name: bytes, data: bytes, response: httpx2.Response) -> None:
        if name == b"error":
            raise self._stream_error(data, response)
        if not name or not data or name == b"ping":
            return
        try:
            self._event(_json(data))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"an event of the answer stream has an unexpected shape ({exc!r})") from exc

    def _event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                self.chunks.append(delta["text"])
                self._sink.append(delta["text"])
            elif delta["type"] == "input_json_delta" and (use := self._uses.get(event["index"])):
                use.raw_input += delta["partial_json"]
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "tool_use":
                self._uses[event["index"]] = ToolUse(id=str(block["id"]), name=str(block["name"]))
        elif kind == "message_start":
            self.model = event["message"]["model"]
            self._usage.start(event["message"]["usage"])
            self._sink.usage_so_far(self.model, self._usage.tokens())
            self._sink.response_started()
        elif kind == "message_delta":
            self.stop_reason = event["delta"]["stop_reason"]
            self._usage.delta(event["usage"])
        elif kind == "message_stop":
            self.ended = True

    def report_usage(self) -> None:
        if self._usage.seen:
            self._sink.add_usage(self.model, self._usage.tokens())

    def reply(self) -> Reply:
        result = SubagentResult(text="".join(self.chunks), model=self.model, stop_reason=self.stop_reason)
        uses = [self._uses[i] for i in sorted(self._uses)] if self.stop_reason == "tool_use" else []
        return Reply(result, uses)

    def _stream_error(self, data: bytes, response: httpx2.Response) -> anthropic.APIStatusError:
        """An ``error`` event as the SDK's stream raises it: status 200, the event's JSON as the body."""
        text = data.decode("utf-8", "replace")
        body: object = text
        try:
            body = json.loads(data)
            message = f"{body}"
        except ValueError:
            message = text or f"Error code: {response.status_code}"
        # The SDK's own constructor (what its stream calls), for the same class and message.
        return self._client._make_status_error(message, body=body, response=response)  # pyright: ignore[reportPrivateUsage]


def _json(data: bytes) -> Any:
    """``json.loads(data)``, in about a quarter of the time: pydantic-core's parser first, and what it
    refuses (malformed data, a lone surrogate escape, a byte order mark) left to ``json.loads``, so that
    the answer, and the error, are always ``json.loads``'s."""
    try:
        return pydantic_core.from_json(data)
    except ValueError:
        return json.loads(data)


class _Usage:
    """Usage from ``message_start`` and the cumulative counts in ``message_delta``."""

    __slots__ = ("cache_read", "cache_write", "input", "output", "seen")

    def __init__(self) -> None:
        self.seen = False
        self.input = self.output = self.cache_write = self.cache_read = 0

    def start(self, usage: dict[str, Any]) -> None:
        self.seen = True
        self.input = usage.get("input_tokens") or 0
        self.output = usage.get("output_tokens") or 0
        self.cache_write = usage.get("cache_creation_input_tokens") or 0
        self.cache_read = usage.get("cache_read_input_tokens") or 0

    def delta(self, usage: dict[str, Any]) -> None:
        self.seen = True
        self.output = usage.get("output_tokens") or self.output
        if (tokens := usage.get("input_tokens")) is not None:
            self.input = tokens
        if (tokens := usage.get("cache_creation_input_tokens")) is not None:
            self.cache_write = tokens
        if (tokens := usage.get("cache_read_input_tokens")) is not None:
            self.cache_read = tokens

    def tokens(self) -> Tokens:
        return Tokens(self.input, self.output, self.cache_write, self.cache_read)
