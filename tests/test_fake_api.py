"""Tests for the fake Anthropic Messages API (tests/fake_api.py), through the real SDK over HTTP."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import anyio
import anyio.to_thread
import httpx2
import pytest
from anthropic.types import Message, MessageParam
from anyio.streams.buffered import BufferedByteReceiveStream

from server.backends.anthropic_api import message_params
from server.core.models import SubagentRequest
from server.fanin.findings import merge_findings
from server.fanin.model_answer import SYNTHESIS_SCHEMA
from server.intake.answer_schemas import FINDINGS_SCHEMA, check_answer
from server.intake.files import FileText
from server.intake.requests import TaskRequest
from server.intake.subagent_prompt import build_prompt
from tests.fake_api import FakeApi, FakeConfig, serve_in_thread

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-5-5"
WAIT = 10.0  # upper bound for every wait; no test relies on timing
BIG_PREFIX = "shared rules. " * 400  # 5600 characters -> 1400 tokens, above min_cache_tokens


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeApi]:
    server = serve_in_thread()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeApi) -> FakeApi:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def client(fake: FakeApi) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key="test-key", base_url=fake.base_url, max_retries=0) as c:
        yield c


@pytest.fixture
async def http(fake: FakeApi) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=fake.base_url) as c:
        yield c


async def until(wait: Callable[..., bool], *args: Any) -> None:
    """Run a blocking `FakeApi.wait_*` in a worker thread and require it to succeed."""
    with anyio.fail_after(WAIT + 5):
        assert await anyio.to_thread.run_sync(wait, *args, WAIT)


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


async def create(client: anthropic.AsyncAnthropic, text: str, max_tokens: int = 100) -> Message:
    return await client.messages.create(model=MODEL, max_tokens=max_tokens, messages=user(text))


def text_of(message: Message) -> str:
    block = message.content[0]
    assert block.type == "text"
    return block.text


async def collect_text(stream: anthropic.AsyncStream[Any], into: list[str]) -> None:
    """Append the text of every text delta in `stream` to `into`, until the stream ends or raises."""
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            into.append(event.delta.text)  # noqa: PERF401 (keep deltas that arrive before a raise)


async def test_create_returns_the_reply_directive_with_usage(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    prompt = "say [[reply:hello there]] please"
    raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=user(prompt))
    message = await raw.parse()

    assert text_of(message) == "hello there"
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert raw.headers["request-id"].startswith("req_")
    assert message.usage.input_tokens == math.ceil(len(prompt) / 4)
    assert message.usage.output_tokens == 2
    assert message.usage.cache_creation_input_tokens == message.usage.cache_read_input_tokens == 0
    (recorded,) = fake.requests
    assert recorded.path == "/v1/messages"
    assert recorded.status == 200
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.body["messages"] == user(prompt)


async def test_raw_stream_deltas_join_to_the_reply(client: anthropic.AsyncAnthropic, fake: FakeApi) -> None:
    fake.config.chunk_words = 2
    reply = "one two\nthree  four five"
    events: list[Any] = []
    stream = await client.messages.create(
        model=MODEL, max_tokens=100, messages=user(f"[[reply:{reply}]]"), stream=True
    )
    async with stream:
        events = [event async for event in stream]

    types = [event.type for event in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [event.delta.text for event in events if event.type == "content_block_delta"]
    assert len(deltas) == 3
    assert "".join(deltas) == reply
    start, end = events[0], events[-2]
    assert start.message.usage.output_tokens == 1
    assert start.message.usage.input_tokens > 0
    assert end.usage.output_tokens == 5
    assert end.delta.stop_reason == "end_turn"


async def test_stream_helper_final_message_merges_usage(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=user("[[words:7]]")) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
        final = await stream.get_final_message()

    assert text == text_of(final) == "w1 w2 w3 w4 w5 w6 w7"
    assert final.usage.output_tokens == 7


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "expected", "stop_reason"),
    [
        ("[[words:5]]", 100, "w1 w2 w3 w4 w5", "end_turn"),
        ("[[words:5]]", 3, "w1 w2 w3", "max_tokens"),
        ("[[reply:a\nb c d]]", 2, "a\nb", "max_tokens"),
        ("no directive", 100, " ".join(f"w{i}" for i in range(1, 21)), "end_turn"),
    ],
)
async def test_words_and_max_tokens_truncation(
    client: anthropic.AsyncAnthropic, prompt: str, max_tokens: int, expected: str, stop_reason: str
) -> None:
    message = await create(client, prompt, max_tokens=max_tokens)

    assert text_of(message) == expected
    assert message.stop_reason == stop_reason
    assert message.usage.output_tokens == len(expected.split())


async def test_later_user_message_wins(client: anthropic.AsyncAnthropic) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "[[reply:first]]"},
        {"role": "assistant", "content": "[[reply:from the assistant]]"},
        {"role": "user", "content": [{"type": "text", "text": "[[reply:second]]"}]},
    ]
    message = await client.messages.create(model=MODEL, max_tokens=10, messages=messages)

    assert text_of(message) == "second"


async def test_missing_credentials_get_401(http: httpx2.AsyncClient, fake: FakeApi) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": user("hi")}

    response = await http.post("/v1/messages", json=body)
    with_key = await http.post("/v1/messages", json=body, headers={"x-api-key": "k"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"].startswith("req_")
    assert response.json() == {  # the API's shape, request id included
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": response.headers["request-id"],
    }
    assert with_key.status_code == 200
    assert fake.stats().statuses == {401: 1, 200: 1}


async def test_a_key_outside_the_accepted_ones_gets_401_on_every_endpoint(
    http: httpx2.AsyncClient, fake: FakeApi
) -> None:
    fake.config.api_keys = ["good"]
    body = {"model": MODEL, "max_tokens": 10, "messages": user("hi")}

    refused = [
        await http.post(path, json=body, headers={"x-api-key": "bad"})
        for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/messages/batches")
    ]
    accepted = await http.post("/v1/messages", json=body, headers={"authorization": "Bearer good"})

    assert [r.status_code for r in refused] == [401, 401, 401]
    assert all(r.json()["error"]["type"] == "authentication_error" for r in refused)
    assert accepted.status_code == 200


async def test_count_tokens_counts_the_input_without_generating(
    http: httpx2.AsyncClient, fake: FakeApi
) -> None:
    body = {"model": MODEL, "system": "s" * 8, "messages": user("x" * 12)}

    counted = await http.post("/v1/messages/count_tokens", json=body, headers={"x-api-key": "k"})
    unsigned = await http.post("/v1/messages/count_tokens", json=body)

    assert counted.status_code == 200 and counted.json() == {"input_tokens": 5}
    assert unsigned.status_code == 401
    assert [r.status for r in fake.token_counts] == [200, 401]
    assert fake.requests == [] and fake.stats().total == 0  # they generate nothing: counted apart


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 10, "messages": user("hi")},
        {"model": "", "max_tokens": 10, "messages": user("hi")},
        {"model": MODEL, "max_tokens": 0, "messages": user("hi")},
        {"model": MODEL, "max_tokens": True, "messages": user("hi")},
        {"model": MODEL, "max_tokens": 10, "messages": []},
        {"model": MODEL, "max_tokens": 10, "messages": user("[[words:many]]")},
        {"model": MODEL, "max_tokens": 10, "messages": user("hi"), "system": 5},
    ],
)
async def test_invalid_body_gets_400(http: httpx2.AsyncClient, body: dict[str, Any]) -> None:
    response = await http.post("/v1/messages", json=body, headers={"x-api-key": "k"})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_fail_count_fails_first_attempt_then_succeeds(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    prompt = "[[fail:429;count=1;retry-after=7]] [[reply:ok]]"

    with pytest.raises(anthropic.RateLimitError) as caught:
        await create(client, prompt)
    message = await create(client, prompt)

    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.type == "rate_limit_error"
    assert text_of(message) == "ok"
    assert [r.status for r in fake.requests] == [429, 200]


async def test_fail_headers_type_and_message(client: anthropic.AsyncAnthropic) -> None:
    prompt = "[[fail:529;retry-after-ms=250;should-retry=false;type=overloaded_error;message=busy now]]"

    for _ in range(2):  # no count: every attempt fails
        with pytest.raises(anthropic.OverloadedError) as caught:
            await create(client, prompt)
        headers = caught.value.response.headers
        assert headers["retry-after-ms"] == "250"
        assert headers["x-should-retry"] == "false"
        assert caught.value.api_message == "busy now"


async def test_sdk_retries_a_counted_failure_by_request_identity(fake: FakeApi) -> None:
    async with anthropic.AsyncAnthropic(api_key="k", base_url=fake.base_url, max_retries=2) as client:
        message = await create(client, "[[fail:529;count=2;retry-after-ms=1]] [[reply:finally]]")

    assert text_of(message) == "finally"
    assert [r.status for r in fake.requests] == [529, 529, 200]


async def test_stream_error_raises_status_200_after_k_deltas(client: anthropic.AsyncAnthropic) -> None:
    deltas: list[str] = []
    stream = await client.messages.create(
        model=MODEL, max_tokens=100, messages=user("[[stream_error:after=2]]"), stream=True
    )
    async with stream:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await collect_text(stream, deltas)

    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"
    assert deltas == ["w1 w2 w3", " w4 w5 w6"]


async def test_drop_raises_remote_protocol_error_after_k_deltas(client: anthropic.AsyncAnthropic) -> None:
    deltas: list[str] = []
    stream = await client.messages.create(
        model=MODEL, max_tokens=100, messages=user("[[drop:after=1]]"), stream=True
    )
    async with stream:
        # anthropic before 2.17 lets the transport's error through; 2.17 wraps it in APIConnectionError.
        with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)) as caught:
            await collect_text(stream, deltas)

    error = caught.value
    dropped = error if isinstance(error, httpx2.RemoteProtocolError) else error.__cause__
    assert isinstance(dropped, httpx2.RemoteProtocolError)
    assert deltas == ["w1 w2 w3"]


async def test_drop_count_applies_per_attempt(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.APIConnectionError):
        await create(client, "[[drop:count=1]] [[reply:second time]]")
    message = await create(client, "[[drop:count=1]] [[reply:second time]]")

    assert text_of(message) == "second time"


async def test_held_requests_are_all_in_flight_until_released(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    n = 5
    replies: list[str] = []

    async def one(i: int) -> None:
        replies.append(text_of(await create(client, f"[[hold]] [[reply:r{i}]]")))

    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(one, i)
        await until(fake.wait_requests, n)
        await until(fake.wait_held, n)
        stats = fake.stats()
        assert (stats.in_flight, stats.held, replies) == (n, n, [])
        fake.release()

    assert sorted(replies) == [f"r{i}" for i in range(n)]
    await until(fake.wait_idle)
    assert fake.stats().held == 0
    assert fake.stats().max_in_flight == n


async def test_hold_after_k_deltas_pauses_the_stream(client: anthropic.AsyncAnthropic, fake: FakeApi) -> None:
    fake.config.chunk_words = 1
    deltas: list[str] = []
    stream = await client.messages.create(
        model=MODEL, max_tokens=100, messages=user("[[hold:after=1]] [[words:3]]"), stream=True
    )
    async with stream, anyio.create_task_group() as group:
        group.start_soon(collect_text, stream, deltas)
        await until(fake.wait_held, 1)
        fake.release()

    assert deltas == ["w1", " w2", " w3"]


async def test_cancelled_client_frees_a_held_request(client: anthropic.AsyncAnthropic, fake: FakeApi) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(create, client, "[[hold]]")
        await until(fake.wait_held, 1)
        group.cancel_scope.cancel()

    await until(fake.wait_idle)
    stats = fake.stats()
    assert (stats.held, stats.in_flight) == (0, 0)


async def test_cancelled_client_frees_a_stream_held_mid_body(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    async def consume() -> None:
        stream = await client.messages.create(
            model=MODEL, max_tokens=100, messages=user("[[hold:after=1]]"), stream=True
        )
        async with stream:
            async for _ in stream:
                pass

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await until(fake.wait_held, 1)
        group.cancel_scope.cancel()

    await until(fake.wait_idle)
    assert fake.stats().held == 0


async def test_hold_also_holds_a_failing_attempt(client: anthropic.AsyncAnthropic, fake: FakeApi) -> None:
    async with anyio.create_task_group() as group:

        async def failing() -> None:
            with pytest.raises(anthropic.InternalServerError):
                await create(client, "[[fail:500;count=1]] [[hold]]")

        group.start_soon(failing)
        await until(fake.wait_held, 1)
        fake.release()

    assert fake.stats().statuses == {500: 1}


async def test_reset_lets_requests_held_before_it_through(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    replies: list[str] = []

    async def held() -> None:
        replies.append(text_of(await create(client, "[[hold]] [[reply:let through]]")))

    async with anyio.create_task_group() as group:
        group.start_soon(held)
        await until(fake.wait_held, 1)
        fake.reset()

    assert replies == ["let through"]
    assert fake.stats().held == 0


def cached_system() -> list[Any]:
    return [{"type": "text", "text": BIG_PREFIX, "cache_control": {"type": "ephemeral"}}]


async def test_cache_lead_then_siblings_gives_one_write(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    siblings = 4
    prefix_tokens = math.ceil(len(BIG_PREFIX) / 4)
    usages: list[Any] = []

    async def lead() -> None:
        stream = await client.messages.create(
            model=MODEL,
            max_tokens=10,
            system=cached_system(),
            messages=user("[[hold:after=0]] lead"),
            stream=True,
        )
        async with stream:
            usages.extend([event.message.usage async for event in stream if event.type == "message_start"])

    async def sibling(i: int) -> None:
        message = await client.messages.create(
            model=MODEL, max_tokens=10, system=cached_system(), messages=user(f"sibling {i}")
        )
        usages.append(message.usage)

    async with anyio.create_task_group() as group:
        group.start_soon(lead)
        await until(fake.wait_held, 1)  # the lead has sent message_start: its entry is readable
        async with anyio.create_task_group() as fan_out:
            for i in range(siblings):
                fan_out.start_soon(sibling, i)
        fake.release()

    writes = [u for u in usages if u.cache_creation_input_tokens]
    reads = [u for u in usages if u.cache_read_input_tokens]
    assert [u.cache_creation_input_tokens for u in writes] == [prefix_tokens]
    assert [u.cache_read_input_tokens for u in reads] == [prefix_tokens] * siblings
    stats = fake.stats()
    assert (stats.cache_writes, stats.cache_reads) == (1, siblings)


async def test_cache_requests_fired_together_all_write(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    n = 5
    usages: list[Any] = []

    async def one(i: int) -> None:
        message = await client.messages.create(
            model=MODEL, max_tokens=10, system=cached_system(), messages=user(f"[[hold]] {i}")
        )
        usages.append(message.usage)

    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(one, i)
        await until(fake.wait_held, n)
        fake.release()

    assert all(u.cache_creation_input_tokens and not u.cache_read_input_tokens for u in usages)
    stats = fake.stats()
    assert (stats.cache_writes, stats.cache_reads) == (n, 0)


async def test_short_prefix_is_not_cached(client: anthropic.AsyncAnthropic, fake: FakeApi) -> None:
    system: Any = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    first = await client.messages.create(model=MODEL, max_tokens=10, system=system, messages=user("a"))
    second = await client.messages.create(model=MODEL, max_tokens=10, system=system, messages=user("a"))

    for message in (first, second):
        assert message.usage.cache_creation_input_tokens == message.usage.cache_read_input_tokens == 0
        assert message.usage.input_tokens == math.ceil(len("short" + "a") / 4)
    assert (fake.stats().cache_writes, fake.stats().cache_reads) == (0, 0)


async def test_rpm_limit_answers_429_with_retry_after(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    fake.config.rpm_limit = 2
    remaining: list[str] = []
    for i in range(2):
        raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=5, messages=user(str(i)))
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "2"
        remaining.append(raw.headers["anthropic-ratelimit-requests-remaining"])

    with pytest.raises(anthropic.RateLimitError) as caught:
        await create(client, "third")

    assert remaining == ["1", "0"]
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert caught.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


async def test_every_answer_announces_a_large_accounts_headroom_when_no_limit_is_set(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    fake.config.announced_rpm = 1_000
    seen: list[str] = []
    for i in range(3):
        raw = await client.messages.with_raw_response.create(model=MODEL, max_tokens=5, messages=user(str(i)))
        seen.append(raw.headers["anthropic-ratelimit-requests-remaining"])
        reset = datetime.fromisoformat(
            raw.headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00")
        )
        assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 60
        assert raw.headers["anthropic-ratelimit-input-tokens-remaining"] == str(fake.config.announced_tpm)
        assert (
            raw.headers["anthropic-ratelimit-output-tokens-reset"]
            == raw.headers["anthropic-ratelimit-requests-reset"]
        )

    assert seen == ["999", "998", "997"]  # counted, none refused


async def test_max_concurrency_answers_529(client: anthropic.AsyncAnthropic, fake: FakeApi) -> None:
    fake.config.max_concurrency = 2
    replies: list[str] = []

    async def held(i: int) -> None:
        replies.append(text_of(await create(client, f"[[hold]] [[reply:{i}]]")))

    async with anyio.create_task_group() as group:
        for i in range(2):
            group.start_soon(held, i)
        await until(fake.wait_held, 2)
        with pytest.raises(anthropic.OverloadedError):
            await create(client, "one too many")
        fake.release()

    assert sorted(replies) == ["0", "1"]
    assert fake.stats().statuses == {200: 2, 529: 1}


async def test_control_plane(
    http: httpx2.AsyncClient, client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    configured = await http.post("/_fake/config", json={"default_words": 4, "require_auth": False})
    rejected = await http.post("/_fake/config", json={"no_such_field": 1})
    message = await create(client, "default reply")
    stats = (await http.get("/_fake/stats")).json()

    assert configured.json()["default_words"] == 4
    assert fake.config.require_auth is False
    assert rejected.status_code == 400
    assert text_of(message) == "w1 w2 w3 w4"
    assert (stats["total"], stats["statuses"]) == (1, {"200": 1})

    async with anyio.create_task_group() as group:
        group.start_soon(create, client, "[[hold]]")
        await until(fake.wait_held, 1)
        assert (await http.post("/_fake/release")).status_code == 200
    await until(fake.wait_idle)

    assert (await http.post("/_fake/reset")).status_code == 200
    assert fake.stats().total == 0
    assert fake.config == FakeConfig()


async def test_models_and_unknown_paths(http: httpx2.AsyncClient, client: anthropic.AsyncAnthropic) -> None:
    page = await client.models.list()
    missing = await http.get("/v1/nothing")

    assert [model.id for model in page.data] == [MODEL]
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


def test_stop_leaves_no_thread_and_closes_the_port() -> None:
    server = serve_in_thread(FakeConfig(require_auth=False))
    response = httpx2.post(
        f"{server.base_url}/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": user("hi")}
    )
    server.stop()

    assert response.status_code == 200
    assert not [t for t in threading.enumerate() if t.name == f"fake-api-{server.base_url}"]
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.base_url}/v1/models")


async def test_command_line_serves_until_terminated() -> None:
    script = Path(__file__).with_name("fake_api.py")
    command = [sys.executable, str(script), "--port", "0", "--latency", "0.01", "--chunk-delay", "0"]
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL, stderr=None) as process:
        assert process.stdout is not None
        try:
            with anyio.fail_after(WAIT):
                line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 1000)
            assert line.startswith(b"FAKE_API_URL=http://127.0.0.1:")
            base_url = line.decode().removeprefix("FAKE_API_URL=")
            async with anthropic.AsyncAnthropic(api_key="k", base_url=base_url, max_retries=0) as client:
                message = await create(client, "[[reply:from a process]]")
            assert text_of(message) == "from a process"
        finally:
            process.terminate()
            with anyio.fail_after(WAIT):
                returncode = await process.wait()

    assert returncode == 0


async def test_truncate_ends_the_stream_cleanly_before_message_stop(fake: FakeApi) -> None:
    async with anthropic.AsyncAnthropic(api_key="test-key", base_url=fake.base_url, max_retries=0) as client:
        stream = await client.messages.create(
            model=MODEL,
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": "[[words:9]] [[truncate:after=2]]"}],
        )
        events = [event.type async for event in stream]
    assert "message_stop" not in events and "message_delta" not in events
    assert events.count("content_block_delta") == 2


async def test_stream_error_carries_the_requested_type(fake: FakeApi) -> None:
    async with anthropic.AsyncAnthropic(api_key="test-key", base_url=fake.base_url, max_retries=0) as client:
        stream = await client.messages.create(
            model=MODEL,
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": "[[stream_error:after=1;type=invalid_request_error]]"}],
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            async for _ in stream:
                pass
    assert caught.value.type == "invalid_request_error"


# --------------------------------------------------------------------------- Message Batches


def batch_request(custom_id: str, text: str) -> Any:
    return {"custom_id": custom_id, "params": {"model": MODEL, "max_tokens": 50, "messages": user(text)}}


async def test_a_batch_answers_each_request_by_its_directives_in_reverse_order_with_batch_usage(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    created = await client.messages.batches.create(
        requests=[
            batch_request("a", "[[reply:first]]"),
            batch_request("b", "[[words:3]]"),
            batch_request("c", "[[batch:expired]]"),
            batch_request("d", "[[batch:errored;type=overloaded_error;message=busy]]"),
            batch_request("e", "[[fail:400;message=max_tokens: too large]]"),
        ]
    )
    ended = await client.messages.batches.retrieve(created.id)
    lines = [line async for line in await client.messages.batches.results(created.id)]

    assert created.id.startswith("msgbatch_") and created.processing_status == "in_progress"
    assert created.request_counts.processing == 5 and created.results_url is None
    assert ended.processing_status == "ended" and ended.ended_at is not None
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.expired) == (0, 2, 2, 1)
    assert ended.results_url == f"{fake.base_url}/v1/messages/batches/{created.id}/results"
    assert [line.custom_id for line in lines] == ["e", "d", "c", "b", "a"]
    results = {line.custom_id: line.result for line in lines}
    first, second = results["a"], results["b"]
    assert first.type == "succeeded" and text_of(first.message) == "first"
    assert second.type == "succeeded" and text_of(second.message) == "w1 w2 w3"
    assert first.message.usage.service_tier == "batch" and first.message.usage.output_tokens == 1
    assert results["c"].type == "expired"
    busy, invalid = results["d"], results["e"]
    assert busy.type == "errored" and (busy.error.error.type, busy.error.error.message) == (
        "overloaded_error",
        "busy",
    )
    assert invalid.type == "errored" and invalid.error.error.type == "invalid_request_error"
    stats = fake.stats()
    assert (stats.batches, stats.batch_requests) == (1, 5)
    assert stats.batch_calls == {"create": 1, "retrieve": 2, "results": 1}
    assert stats.total == 4 and stats.statuses == {200: 4}  # results() retrieves first


async def test_a_batch_is_in_progress_until_its_delay_has_passed(
    client: anthropic.AsyncAnthropic, http: httpx2.AsyncClient, fake: FakeApi
) -> None:
    fake.config.batch_delay_s = 3600
    created = await client.messages.batches.create(requests=[batch_request("a", "hi")])
    current = await client.messages.batches.retrieve(created.id)
    early = await http.get(f"/v1/messages/batches/{created.id}/results", headers={"x-api-key": "k"})

    assert current.processing_status == "in_progress" and current.results_url is None
    assert early.status_code == 400 and "in_progress" in early.json()["error"]["message"]
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        await client.messages.batches.results(created.id)


async def test_a_held_batch_ends_only_once_the_gate_is_released(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    created = await client.messages.batches.create(
        requests=[batch_request("a", "[[batch:hold]]"), batch_request("b", "x")]
    )
    held = await client.messages.batches.retrieve(created.id)
    fake.release()
    released = await client.messages.batches.retrieve(created.id)

    assert held.processing_status == "in_progress"
    assert released.processing_status == "ended" and released.request_counts.succeeded == 2


async def test_cancelling_a_batch_ends_it_with_every_request_canceled(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    created = await client.messages.batches.create(
        requests=[batch_request(f"r{i}", "[[hold]]") for i in range(3)]
    )
    canceling = await client.messages.batches.cancel(created.id)
    ended = await client.messages.batches.retrieve(created.id)
    again = await client.messages.batches.cancel(created.id)
    results = [line.result.type async for line in await client.messages.batches.results(created.id)]

    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 3
    assert again.processing_status == "ended"
    assert results == ["canceled"] * 3
    assert fake.stats().batches_canceled == 1


@pytest.mark.parametrize(
    ("requests", "words"),
    [
        ([], "requests: must be a list"),
        ([batch_request("a", "x"), batch_request("a", "y")], "'a' is not unique"),
        ([batch_request("a b", "x")], "custom_id: must match"),
        ([{"custom_id": "a"}], "params: Field required"),
    ],
)
async def test_a_malformed_batch_is_refused_whole_with_400(
    client: anthropic.AsyncAnthropic, fake: FakeApi, requests: list[Any], words: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=re.escape(words)):
        await client.messages.batches.create(requests=requests)
    assert fake.stats().batches == 0


async def test_a_request_that_is_not_a_valid_message_request_ends_errored(
    client: anthropic.AsyncAnthropic,
) -> None:
    # Plain JSON: a streamed request in a batch is not one that the SDK's types allow.
    bad: Any = {"custom_id": "bad", "params": {"model": MODEL, "max_tokens": 0, "messages": user("x")}}
    streamed: Any = {
        "custom_id": "streamed",
        "params": {"model": MODEL, "max_tokens": 5, "stream": True, "messages": user("x")},
    }
    created = await client.messages.batches.create(requests=[bad, streamed, batch_request("ok", "x")])
    await client.messages.batches.retrieve(created.id)
    results = {
        line.custom_id: line.result async for line in await client.messages.batches.results(created.id)
    }

    assert results["ok"].type == "succeeded"
    for custom_id, words in [("bad", "max_tokens"), ("streamed", "cannot be streamed")]:
        result = results[custom_id]
        assert result.type == "errored" and words in result.error.error.message


async def test_injected_batch_failures_answer_once_each_in_order(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    fake.config.batch_failures = {"retrieve": [429, 500]}
    created = await client.messages.batches.create(requests=[batch_request("a", "x")])
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.batches.retrieve(created.id)
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.batches.retrieve(created.id)
    ended = await client.messages.batches.retrieve(created.id)

    assert ended.processing_status == "ended"
    assert fake.stats().statuses == {200: 2, 429: 1, 500: 1}
    assert fake.config.batch_failures == {"retrieve": []}


async def test_batches_are_listed_newest_first_and_deleted_only_once_ended(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    older = await client.messages.batches.create(requests=[batch_request("a", "x")])
    newer = await client.messages.batches.create(requests=[batch_request("a", "[[hold]]")])
    page = await client.messages.batches.list(limit=1)
    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        await client.messages.batches.delete(newer.id)
    await client.messages.batches.retrieve(older.id)
    deleted = await client.messages.batches.delete(older.id)

    assert [b.id for b in page.data] == [newer.id] and page.has_more
    assert deleted.id == older.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(older.id)


async def test_batch_endpoints_require_credentials(http: httpx2.AsyncClient, fake: FakeApi) -> None:
    response = await http.post("/v1/messages/batches", json={"requests": [batch_request("a", "x")]})

    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
    assert fake.stats().batches == 0


# --------------------------------------------------------------------------- schema-constrained answers

SHARED_FILES = {
    "app/cache.py": "".join(f"line {n}\n" for n in range(1, 121)),
    "app/http.py": "".join(f"call {n}\n" for n in range(1, 61)),
}
ROLES = ("security", "performance", "testing", "architecture")


def review_prompt(role: str, paths: list[str]) -> str:
    """A task's prompt exactly as the server writes it (server/intake/subagent_prompt.py), asking for findings."""
    texts = {path: SHARED_FILES[path] for path in paths}
    files = {p: FileText(path=p, real=p, text=t, size=len(t), shown=len(t)) for p, t in texts.items()}
    task = TaskRequest(task="Review these files.", role=role, files=paths)
    return build_prompt(task, files, FINDINGS_SCHEMA)


def schema_request(prompt: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The Messages parameters the Anthropic backend sends for a prompt and an output schema."""
    request = SubagentRequest(
        model=MODEL, max_tokens=4000, system="s", prompt=prompt, cache_system=False, output_schema=schema
    )
    params = message_params(request)
    assert params["output_config"]["format"]["type"] == "json_schema"
    return params


async def answer(client: anthropic.AsyncAnthropic, prompt: str, schema: dict[str, Any]) -> str:
    """The fake's streamed answer, joined, as the backend reads it."""
    deltas: list[str] = []
    stream = await client.messages.create(**schema_request(prompt, schema), stream=True)
    await collect_text(stream, deltas)
    return "".join(deltas)


async def test_a_findings_request_gets_valid_findings_about_the_files_in_its_prompt(
    client: anthropic.AsyncAnthropic,
) -> None:
    prompt = review_prompt("security", ["app/cache.py", "app/http.py"])
    text = await answer(client, prompt, FINDINGS_SCHEMA)
    again = await answer(client, prompt, FINDINGS_SCHEMA)
    other = await answer(client, review_prompt("testing", ["app/cache.py", "app/http.py"]), FINDINGS_SCHEMA)

    value, problem = check_answer(text, FINDINGS_SCHEMA)
    assert problem is None
    assert {f["location"]["path"] for f in value["findings"]} == {"app/cache.py", "app/http.py"}
    assert all(f["location"]["end_line"] <= 120 for f in value["findings"])
    assert again == text  # deterministic from the prompt ...
    assert other != text  # ... and varied by it


async def test_tasks_reviewing_the_same_file_report_problems_the_merge_joins_and_disagree_on_some(
    client: anthropic.AsyncAnthropic,
) -> None:
    answers: list[tuple[str, list[dict[str, Any]]]] = []
    for role in ROLES:
        text = await answer(client, review_prompt(role, ["app/cache.py"]), FINDINGS_SCHEMA)
        value, problem = check_answer(text, FINDINGS_SCHEMA)
        assert problem is None
        answers.append((role, value["findings"]))

    merged = merge_findings(answers)

    assert max(f.support for f in merged.findings) == len(ROLES)
    assert merged.conflicts  # different roles rate or fix the shared problem differently


async def test_a_synthesis_request_merges_the_answers_in_its_prompt_citing_only_their_ids(
    client: anthropic.AsyncAnthropic,
) -> None:
    texts = [await answer(client, review_prompt(role, ["app/cache.py"]), FINDINGS_SCHEMA) for role in ROLES]
    ids = [f"t-{role}" for role in ROLES]
    blocks = [f'<answer task_id="{i}" label="{i}">\n{t}\n</answer>' for i, t in zip(ids, texts, strict=True)]
    prompt = f"{len(ids)} answer(s):\n\n" + "\n\n".join(blocks)

    text = await answer(client, prompt, SYNTHESIS_SCHEMA)

    value, problem = check_answer(text, SYNTHESIS_SCHEMA, known_sources=ids)
    assert problem is None
    assert max(len(f["sources"]) for f in value["findings"]) == len(ids)
    assert value["conflicts"] and value["actions"]
    cited = {s for f in value["findings"] for s in f["sources"]}
    assert cited == set(ids)


async def test_a_synthesis_of_no_answers_is_valid_and_says_so(client: anthropic.AsyncAnthropic) -> None:
    text = await answer(client, "No task has answered.", SYNTHESIS_SCHEMA)

    value, problem = check_answer(text, SYNTHESIS_SCHEMA, known_sources=[])
    assert problem is None and value["findings"] == [] and value["summary"] == "No task has answered."


OTHER_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}},
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["score", "ratio", "verdict", "tags", "when", "note"],
        "properties": {
            "score": {"type": "integer", "minimum": 3, "maximum": 7},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "verdict": {"enum": ["yes", "no"]},
            "tags": {
                "type": "array",
                "items": {"type": "string", "minLength": 3},
                "minItems": 3,
                "maxItems": 4,
            },
            "when": {"type": "string", "format": "date"},
            "note": {"type": ["string", "null"]},
        },
    },
    {
        "type": "object",
        "$defs": {"item": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}},
        "required": ["items", "choice"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
            "choice": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
        },
    },
]


@pytest.mark.parametrize("schema", OTHER_SCHEMAS, ids=["plain", "bounded", "refs"])
async def test_any_other_schema_gets_a_valid_instance(
    client: anthropic.AsyncAnthropic, schema: dict[str, Any]
) -> None:
    text = await answer(client, "Answer in the schema.", schema)

    value, problem = check_answer(text, schema)
    assert problem is None, problem
    assert value == json.loads(await answer(client, "Answer in the schema.", schema))


@pytest.mark.parametrize(
    ("directive", "expected"), [("[[reply:not json]]", "not json"), ("[[words:3]]", "w1 w2 w3")]
)
async def test_a_directive_wins_over_the_requested_schema(
    client: anthropic.AsyncAnthropic, directive: str, expected: str
) -> None:
    assert await answer(client, review_prompt("security", ["app/cache.py"]) + directive, FINDINGS_SCHEMA) == (
        expected
    )


def test_command_line_runs_a_command_against_the_fake_and_exits_with_its_status() -> None:
    client_code = (
        "import os, sys, anthropic\n"
        "client = anthropic.Anthropic(max_retries=0)\n"
        "message = client.messages.create(model='m', max_tokens=9, messages=[{'role': 'user', 'content': "
        "'[[reply:hi from the fake]]'}])\n"
        "print(os.environ['ANTHROPIC_API_KEY'], message.content[0].text)\n"
        "sys.exit(3)\n"
    )
    script = Path(__file__).with_name("fake_api.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["ANTHROPIC_API_KEY"] = "a-real-key"  # replaced: the fake never sees a caller's key

    done = subprocess.run(
        [sys.executable, str(script), "--", sys.executable, "-c", client_code],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 3
    assert done.stdout == "fake hi from the fake\n"
    assert re.match(r"FAKE_API_URL=http://127\.0\.0\.1:\d+\n", done.stderr)


async def test_a_script_plays_the_model_with_tool_calls_then_text_and_leaves_other_requests_alone(
    client: anthropic.AsyncAnthropic, fake: FakeApi
) -> None:
    def play(body: dict[str, Any]) -> str | list[dict[str, Any]] | None:
        if not body.get("tools"):
            return None
        answered = any(m["role"] == "user" and isinstance(m["content"], list) for m in body["messages"])
        return "all done" if answered else [{"name": "look", "input": {"at": "here"}}]

    fake.script = play
    tools: Any = [{"name": "look", "input_schema": {"type": "object"}}]
    asked = user("go")
    first = await client.messages.create(model=MODEL, max_tokens=50, messages=asked, tools=tools)
    (use,) = first.content
    assert use.type == "tool_use"
    followed: Any = [
        *asked,
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "seen"}]},
    ]
    second = await client.messages.create(model=MODEL, max_tokens=50, messages=followed, tools=tools)
    plain = await create(client, "[[reply:as usual]]")
    fake.reset()

    assert (first.stop_reason, use.name, use.input) == ("tool_use", "look", {"at": "here"})
    assert (second.stop_reason, text_of(second)) == ("end_turn", "all done")
    assert text_of(plain) == "as usual"
    assert fake.script is None
