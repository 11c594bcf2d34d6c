"""The answer read from the stream's bytes is the answer the SDK's own event objects give.

Each stream goes through both readers: ``stream_answer`` (ours) and ``sdk_answer`` below, the backend's
reading before, over ``messages.create(stream=True)``. Both must leave the same calls on the task's sink
(text, start, usage) and end in the same reply or the same fault, as ``faults.classify`` sees it. The
streams come from the fake Messages API (its fault directives, tool use, structured output, the prompt
cache) and, byte for byte, from hand-written streams cut at awkward places.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import pytest

from server import ErrorKind, SubagentRequest, SubagentResult, Tokens
from server.app.runtime import make_client
from server.backends.answer_stream import stream_answer
from server.backends.faults import Transient, classify
from server.backends.message_params import message_params
from server.backends.tooluse import Reply, ToolUse
from server.core.errors import TaskFailure
from tests.fake_api import FakeApi

MODEL = "claude-sonnet-5-5"
Reader = Callable[[anthropic.AsyncAnthropic, dict[str, Any], str, "LoggingSink"], Awaitable[Reply]]


class LoggingSink:
    """A TaskSink that writes down every call, in order."""

    task_id = "t-diff"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def response_started(self) -> None:
        self.calls.append(("started",))

    def append(self, text: str) -> None:
        self.calls.append(("append", text))

    def restart(self, note: str, cause: ErrorKind) -> None:
        self.calls.append(("restart", note, cause))

    def status(self, text: str) -> None:
        self.calls.append(("status", text))

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        self.calls.append(("usage", model, tokens, cost_usd))

    def usage_so_far(self, model: str, tokens: Tokens) -> None:
        self.calls.append(("so far", model, tokens))


async def ours(
    client: anthropic.AsyncAnthropic, params: dict[str, Any], model: str, sink: LoggingSink
) -> Reply:
    return await stream_answer(client, params, model, sink, lambda headers: None)


async def sdk_answer(
    client: anthropic.AsyncAnthropic, params: dict[str, Any], model: str, sink: LoggingSink
) -> Reply:
    """The reference: the SDK's stream of event objects, read as the backend read it before."""
    chunks: list[str] = []
    usage = SdkUsage()
    uses: dict[int, ToolUse] = {}
    stop_reason, ended = None, False
    try:
        stream = await client.messages.create(**params, stream=True)
        try:
            async for event in stream:
                if event.type in ("content_block_delta", "content_block_start"):
                    sdk_block_event(event, chunks, uses, sink)
                elif event.type == "message_start":
                    model = event.message.model
                    usage.start(event.message.usage)
                    sink.usage_so_far(model, usage.tokens())
                    sink.response_started()
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason
                    usage.delta(event.usage)
                elif event.type == "message_stop":
                    ended = True
        finally:
            await stream.close()
        if not ended:
            raise Transient("the answer stream ended before the answer did", None, pushback=False)
    finally:
        if usage.seen:
            sink.add_usage(model, usage.tokens())
    result = SubagentResult(text="".join(chunks), model=model, stop_reason=stop_reason)
    return Reply(result, [uses[i] for i in sorted(uses)] if stop_reason == "tool_use" else [])


def sdk_block_event(event: Any, chunks: list[str], uses: dict[int, ToolUse], sink: LoggingSink) -> None:
    """The reference's reading of a content block's start or delta: text, or a tool use's input."""
    if event.type == "content_block_delta":
        if event.delta.type == "text_delta":
            chunks.append(event.delta.text)
            sink.append(event.delta.text)
        elif event.delta.type == "input_json_delta" and event.index in uses:
            uses[event.index].raw_input += event.delta.partial_json
    elif event.content_block.type == "tool_use":
        block = event.content_block
        uses[event.index] = ToolUse(id=str(block.id), name=str(block.name))


class SdkUsage:
    def __init__(self) -> None:
        self.seen = False
        self.counts = [0, 0, 0, 0]

    def start(self, usage: Any) -> None:
        self.seen = True
        self.counts = [usage.input_tokens or 0, usage.output_tokens or 0,
                       usage.cache_creation_input_tokens or 0,
                       usage.cache_read_input_tokens or 0]  # fmt: skip

    def delta(self, usage: Any) -> None:
        self.seen = True
        self.counts[1] = usage.output_tokens or self.counts[1]
        for i, value in ((0, usage.input_tokens), (2, usage.cache_creation_input_tokens),
                         (3, usage.cache_read_input_tokens)):  # fmt: skip
            if value is not None:
                self.counts[i] = value

    def tokens(self) -> Tokens:
        return Tokens(*self.counts)


@dataclass(frozen=True)
class Outcome:
    """What a reader left: the sink's calls, and its reply or its fault as ``classify`` sees it."""

    calls: tuple[tuple[Any, ...], ...]
    reply: tuple[Any, ...] | None
    fault: tuple[Any, ...] | None


async def outcome(read: Reader, client: anthropic.AsyncAnthropic, params: dict[str, Any]) -> Outcome:
    sink = LoggingSink()
    try:
        reply = await read(client, params, MODEL, sink)
    except Exception as exc:
        return Outcome(tuple(sink.calls), None, fault(exc))
    uses = tuple((u.id, u.name, u.raw_input) for u in reply.uses)
    result = reply.result
    return Outcome(tuple(sink.calls), (result.text, result.model, result.stop_reason, uses), None)


def fault(exc: Exception) -> tuple[Any, ...]:
    mapped = classify(exc)
    if isinstance(mapped, Transient):
        return ("transient", mapped.what, mapped.retry_after, mapped.pushback, mapped.unconnected)
    if isinstance(mapped, TaskFailure):  # request ids differ from one request to the fake to the next
        return ("failure", type(mapped).__name__, mapped.kind, re.sub(r"req_\w+", "req_", str(mapped)))
    return ("unclassified", type(exc).__name__)


def b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


TOOLS = b64([[{"name": "read_file", "input": {"path": "a/\u00e9.py", "lines": [1, 2]}},
              {"name": "grep", "input": {"pattern": "x+"}}]])  # fmt: skip
SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
SHARED = "Conventions of the project, long enough for the prompt cache. " * 120


def subagent_request(
    prompt: str, *, system: str = "s", cache_system: bool = False, output_schema: Any = None
) -> SubagentRequest:
    return SubagentRequest(model=MODEL, max_tokens=500, prompt=prompt, system=system,
                           cache_system=cache_system, output_schema=output_schema)  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "extra"),
    [
        ("[[words:40]]", {}),
        ('[[reply:caf\u00e9 \u65e5\u672c \U0001f389 \\ "quoted" \n new line]]', {}),
        (f"look around [[tools64:{TOOLS}]]", {}),
        ('[[reply:{"n": 3}]]', {"output_schema": SCHEMA}),
        ("cached", {"system": SHARED, "cache_system": True}),
        ("[[stream_error:after=2]] [[words:9]]", {}),
        ("[[stream_error:after=1;type=rate_limit_error]] [[words:9]]", {}),
        ("[[stream_error:after=1;type=invalid_request_error]] [[words:9]]", {}),
        ("[[stream_error:after=0;type=authentication_error]]", {}),
        ("[[truncate:after=3]] [[words:9]]", {}),
        ("[[drop:after=2]] [[words:9]]", {}),
        ("[[fail:429;retry-after=3]]", {}),
        ("[[fail:529;retry-after-ms=5]]", {}),
        ("[[fail:500;should-retry=false]]", {}),
        ("[[fail:400;message=max_tokens: too large]]", {}),
        ("[[fail:401]]", {}),
        ("[[fail:403]]", {}),
        ("[[fail:404;message=model: nope]]", {}),
    ],
)
async def test_both_readers_give_the_same_answer_or_fault_for_the_fakes_streams(
    fake_api: FakeApi, make_settings: Any, prompt: str, extra: dict[str, Any]
) -> None:
    fake_api.config.chunk_words = 2
    params = message_params(subagent_request(prompt, **extra))
    client = make_client(make_settings())
    try:
        if "cache_system" in extra:
            await outcome(ours, client, params)  # writes the cache: both readers below read it
        mine, theirs = await outcome(ours, client, params), await outcome(sdk_answer, client, params)
    finally:
        await client.close()
    assert without_ids(mine) == without_ids(theirs)
    assert mine.calls or mine.fault  # the fake answered something


def without_ids(result: Outcome) -> Outcome:
    """The fake gives every tool use a new id."""
    if result.reply is None:
        return result
    uses = tuple(("toolu_", name, raw) for _, name, raw in result.reply[3])
    return Outcome(result.calls, (*result.reply[:3], uses), result.fault)


async def test_the_fakes_streams_read_as_expected(fake_api: FakeApi, make_settings: Any) -> None:
    """Not only the same as the SDK: what the answers say."""
    client = make_client(make_settings())
    try:

        async def read(prompt: str) -> Outcome:
            return await outcome(ours, client, message_params(subagent_request(prompt)))

        words, tools, broken = (
            await read("[[words:5]]"),
            await read(f"[[tools64:{TOOLS}]]"),
            await read("[[stream_error:after=1]] [[words:5]]"),
        )
    finally:
        await client.close()
    assert words.reply is not None and words.reply[0] == "w1 w2 w3 w4 w5" and words.reply[2] == "end_turn"
    # The input is known as the answer starts (a call cut off later is billed for it), counted once it ends.
    assert [call[0] for call in words.calls[:2]] == ["so far", "started"] and words.calls[-1][0] == "usage"
    assert words.calls[0][2].input_tokens == words.calls[-1][2].input_tokens > 0
    assert tools.reply is not None and tools.reply[2] == "tool_use"
    (read_file, grep) = tools.reply[3]
    assert (read_file[1], grep[1]) == ("read_file", "grep")
    assert json.loads(read_file[2]) == {"path": "a/\u00e9.py", "lines": [1, 2]}
    assert json.loads(grep[2]) == {"pattern": "x+"}
    assert broken.fault is not None and broken.fault[:2] == (
        "transient",
        "the answer stream broke off (overloaded_error)",
    )


# --- hand-written streams, byte for byte --------------------------------------------------------------


def sse(name: str | None, data: Any, *, end: str = "\n") -> str:
    lines = ([f"event: {name}"] if name else []) + (
        [f"data: {line}" for line in (data if isinstance(data, str) else json.dumps(data)).split("\n")]
        if data is not None else []
    )  # fmt: skip
    return end.join(lines) + end + end


def start(usage: dict[str, int] | None = None) -> str:
    usage = usage or {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 3,
                      "cache_read_input_tokens": 40}  # fmt: skip
    message: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                               "model": "claude-opus-9", "stop_reason": None, "stop_sequence": None,
                               "usage": usage}  # fmt: skip
    return sse("message_start", {"type": "message_start", "message": message})


def text(piece: str, index: int = 0) -> str:
    delta = {"type": "text_delta", "text": piece}
    return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def block(index: int, content: dict[str, Any]) -> str:
    return sse(
        "content_block_start", {"type": "content_block_start", "index": index, "content_block": content}
    )


def finish(stop: str = "end_turn", usage: dict[str, Any] | None = None) -> str:
    delta = {"stop_reason": stop, "stop_sequence": None}
    message_delta = {"type": "message_delta", "delta": delta, "usage": usage or {"output_tokens": 9}}
    return sse("message_delta", message_delta) + sse("message_stop", {"type": "message_stop"})


THINKING = (
    block(0, {"type": "thinking", "thinking": "", "signature": ""})
    + sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "thinking_delta", "thinking": "hmm \u00e9"}})
    + sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "signature_delta", "signature": "c2ln"}})
    + sse("content_block_stop", {"type": "content_block_stop", "index": 0})
)  # fmt: skip
TOOL_USE = (
    block(2, {"type": "tool_use", "id": "toolu_9", "name": "grep", "input": {}})
    + sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"pattern": "\u00e9'},
        },
    )
    + sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '+"}'},
        },
    )
)
ERROR_BODY = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
MULTI_LINE = (
    '{"type": "content_block_delta",\n"index": 0,\n"delta": {"type": "text_delta", "text": "two lines"}}'
)
# Escapes json.loads reads and pydantic-core's parser does not (a lone surrogate) or does (a pair).
ESCAPED_SURROGATES = (
    '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "half \\ud83d"}}'
)
ESCAPED_PAIR = (
    '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "\\ud83d\\ude00"}}'
)
CACHE_USAGE = {
    "output_tokens": 4,
    "input_tokens": 7,
    "cache_creation_input_tokens": None,
    "cache_read_input_tokens": 21,
}

STREAMS = {
    "plain": start() + block(1, {"type": "text", "text": ""}) + text("Hello, ") + text("world") + finish(),
    "crlf line ends": (start() + text("caf\u00e9 ") + text("\U0001f389") + finish()).replace("\n", "\r\n"),
    "cr line ends": (start() + text("a") + text("b") + finish()).replace("\n", "\r"),
    "multi-line data": start() + sse("content_block_delta", MULTI_LINE) + finish(),
    "comments, pings, events without data or name": (
        ": keep-alive\n\n"
        + start()
        + sse("ping", {"type": "ping"})
        + sse("ping", None)
        + sse("content_block_stop", None)
        + sse(None, {"type": "message_stop"})
        + text("x")
        + ":comment\n"
        + text("y")
        + finish()
    ),
    "escaped surrogates": start()
    + sse("content_block_delta", ESCAPED_SURROGATES)
    + sse("content_block_delta", ESCAPED_PAIR)
    + finish(),
    "thinking then text": start() + THINKING + text("answer") + finish(),
    "tool use": start() + text("let me look") + TOOL_USE + finish("tool_use"),
    "tool use, stopped for length": start() + TOOL_USE + finish("max_tokens"),
    "usage with cache fields in message_delta": start({"input_tokens": 5})
    + text("z")
    + finish(usage=CACHE_USAGE),
    "unknown event": start() + sse("brand_new", {"type": "brand_new", "x": 1}) + text("q") + finish(),
    "error event": start() + text("partial") + sse("error", ERROR_BODY),
    "error event, rate limit": start() + sse("error", {**ERROR_BODY, "error": {"type": "rate_limit_error"}}),
    "error event, invalid request": sse("error", {**ERROR_BODY, "error": {"type": "invalid_request_error"}}),
    "error event, not JSON": start() + sse("error", "oops, not json"),
    "error event, no data": start() + sse("error", None),
    "data that is not JSON": start() + sse("content_block_delta", "{not json") + finish(),
    "ends early": start() + text("cut"),
    "ends inside an event": start() + text("cut") + "event: message_stop\ndata: {",
    "empty": "",
}


class Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def replaying(body: bytes, size: int) -> anthropic.AsyncAnthropic:
    """A client whose every request is answered with ``body``, ``size`` bytes at a time."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream", "request-id": "req_1"},
                               stream=Chunks(chunks))  # fmt: skip

    transport = httpx2.MockTransport(answer)
    return anthropic.AsyncAnthropic(api_key="k", base_url="http://fake.invalid", max_retries=0,
                                    http_client=httpx2.AsyncClient(transport=transport))  # fmt: skip


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100_000])
@pytest.mark.parametrize("name", list(STREAMS))
async def test_both_readers_give_the_same_answer_or_fault_for_a_stream_cut_anywhere(
    name: str, size: int
) -> None:
    body = STREAMS[name].encode()
    params = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    results: list[Outcome] = []
    for read in (ours, sdk_answer):
        client = replaying(body, size)
        try:
            results.append(await outcome(read, client, params))
        finally:
            await client.close()
    mine, theirs = results
    assert mine == theirs
