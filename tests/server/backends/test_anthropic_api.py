"""The Anthropic backend through the real SDK over real HTTP, against the fake Messages API."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from server import (
    BackendUnavailable,
    ErrorKind,
    Runtime,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskRequest,
    TaskSnapshot,
    TaskState,
    Tokens,
    open_runtime,
)
from server.app.runtime import make_client
from server.backends.anthropic_api import AnthropicBackend
from server.backends.throttle import Throttle
from server.backends.workspace import Workspace
from server.intake.files import FileReader
from tests.fake_api import FakeApi
from tests.server.fakes import ME

MakeSettings = Callable[..., Settings]


@asynccontextmanager
async def api_runtime(
    settings: Settings, *, backoff_base_s: float = 0.01, throttle: Throttle | None = None
) -> AsyncGenerator[Runtime]:
    """The real runtime, with a short back-off so retry tests stay quick."""
    client = make_client(settings)
    try:
        backend = AnthropicBackend(
            client,
            throttle or Throttle(settings.max_concurrency),
            retry_cap_s=settings.retry_cap_s,
            backoff_base_s=backoff_base_s,
            workspace=Workspace(FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)),
        )
        async with open_runtime(settings, backend) as runtime:
            yield runtime
    finally:
        await client.close()


async def run_tasks(runtime: Runtime, *tasks: TaskRequest, **spawn: Any) -> list[TaskSnapshot]:
    receipt = await runtime.registry.spawn(SpawnRequest(tasks=list(tasks), **spawn), caller=ME)
    ids = [t.task_id for t in receipt.tasks]
    with anyio.fail_after(20):
        await runtime.registry.wait(ids)
    return runtime.registry.snapshots(ids)


async def held(fake: FakeApi, n: int) -> None:
    assert await anyio.to_thread.run_sync(fake.wait_held, n, 10.0), f"{n} requests never reached the gate"


async def idle(fake: FakeApi) -> None:
    assert await anyio.to_thread.run_sync(fake.wait_idle, 10.0), "requests are still in flight at the fake"


async def test_streams_the_answer_and_records_usage_and_cost(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(
            runtime, TaskRequest(task="Say hello [[reply:hello there world]]", role="greeter")
        )
    assert snap.state is TaskState.COMPLETED
    assert snap.output == "hello there world"
    assert snap.usage.output_tokens == 3 and snap.usage.input_tokens > 0
    assert snap.usage.cost_usd is not None and snap.usage.cost_usd > 0
    assert snap.model == "claude-sonnet-5-5" and snap.backend == "anthropic"
    (sent,) = fake_api.requests
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body["stream"] is True
    assert sent.body["model"] == "claude-sonnet-5-5"
    assert "You are a greeter specialist" in sent.body["messages"][0]["content"]
    assert sent.body["system"][0]["text"].startswith("You are one of several subagents")


async def test_every_task_is_in_flight_at_once(fake_api: FakeApi, make_settings: MakeSettings) -> None:
    async with api_runtime(make_settings(max_concurrency=20)) as runtime:
        receipt = await runtime.registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task=f"part {i} [[hold]] [[reply:r{i}]]") for i in range(20)]),
            caller=ME,
        )
        ids = [t.task_id for t in receipt.tasks]
        await held(fake_api, 20)
        assert fake_api.stats().in_flight == 20
        assert runtime.registry.counts(ids).running == 20
        fake_api.release()
        with anyio.fail_after(20):
            await runtime.registry.wait(ids)
        assert [s.output for s in runtime.registry.snapshots(ids)] == [f"r{i}" for i in range(20)]


async def test_a_streamed_answer_is_read_without_the_sdks_event_decoder(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK's decoder and its object per event cost more CPU than the rest of a task: the backend
    # reads the bytes itself (answer_stream.py; test_answer_stream.py holds it to the SDK's reading).
    def refuse(*args: object) -> None:
        raise AssertionError("the SDK's SSE decoder was used")

    monkeypatch.setattr("anthropic._streaming.SSEDecoder.aiter_bytes", refuse)
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(runtime, TaskRequest(task="[[words:5]]"))
    assert (snap.state, snap.output) == (TaskState.COMPLETED, "w1 w2 w3 w4 w5"), snap.error
    assert snap.usage.output_tokens == 5


class RecordingSink:
    """A TaskSink that opens ``reached`` once the streamed text equals ``target``."""

    task_id = "t-recording"

    def __init__(self, target: str) -> None:
        self.target = target
        self.chunks: list[str] = []
        self.started = False
        self.reached = anyio.Event()

    def response_started(self) -> None:
        self.started = True

    def append(self, text: str) -> None:
        self.chunks.append(text)
        if "".join(self.chunks) == self.target:
            self.reached.set()

    def restart(self, note: str, cause: ErrorKind) -> None:
        self.chunks.clear()

    def status(self, text: str) -> None:
        pass

    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None:
        pass

    def usage_so_far(self, model: str, tokens: Tokens) -> None:
        pass


async def test_the_answer_streams_into_the_sink_while_it_is_being_written(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.chunk_words = 3
    settings = make_settings()
    client = make_client(settings)
    backend = AnthropicBackend(client, Throttle(4), retry_cap_s=1)
    request = SubagentRequest(
        model="claude-sonnet-5-5",
        max_tokens=100,
        system="s",
        prompt="[[words:9]] [[hold:after=2]]",
        cache_system=False,
    )
    sink = RecordingSink("w1 w2 w3 w4 w5 w6")
    results: list[SubagentResult] = []

    async def run() -> None:
        results.append(await backend.run(request, sink))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(10):
                await sink.reached.wait()  # two chunks arrived while the fake holds the rest back
            assert sink.started and not results
            fake_api.release()
    finally:
        await client.close()
    assert results[0].text == "w1 w2 w3 w4 w5 w6 w7 w8 w9"
    assert results[0].stop_reason == "end_turn"


async def test_429_is_retried_after_retry_after_and_siblings_keep_their_results(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with api_runtime(make_settings()) as runtime:
        limited, sibling = await run_tasks(
            runtime,
            TaskRequest(task="[[fail:429;count=2;retry-after=0.01]] [[reply:got through]]"),
            TaskRequest(task="[[reply:sibling]]"),
        )
    assert (limited.state, limited.output, limited.attempts) == (TaskState.COMPLETED, "got through", 3)
    assert (sibling.state, sibling.output) == (TaskState.COMPLETED, "sibling")
    assert fake_api.stats().statuses.get(429) == 2


async def test_the_limit_rises_to_the_headroom_an_account_announces(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    throttle = Throttle(200, start=10)
    async with api_runtime(make_settings(), throttle=throttle) as runtime:
        (done,) = await run_tasks(runtime, TaskRequest(task="[[reply:ok]]"))

    assert done.state is TaskState.COMPLETED
    assert throttle.limit >= 20  # the answer's headers said 49,999 requests were left: doubled at once


async def test_the_limit_falls_and_new_requests_wait_for_the_window_before_any_429(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.rpm_limit = 4  # a small account: 4 requests a minute, the headers say what is left
    throttle = Throttle(100, start=50)
    async with api_runtime(make_settings(), throttle=throttle) as runtime:
        first = await run_tasks(runtime, *(TaskRequest(task=f"[[reply:{i}]]") for i in range(3)))
        low = throttle.limit
        (last,) = await run_tasks(runtime, TaskRequest(task="[[reply:the window's last]]"))
        held = throttle.held_s

    assert [t.state for t in [*first, last]] == [TaskState.COMPLETED] * 4
    assert low < 10  # 3, 2, then 1 left: the limit followed them down (and rose by one per answer)
    assert held > 30  # nothing left: a fifth request would wait for the window, not meet a 429
    assert fake_api.stats().statuses.get(429) is None


@pytest.mark.parametrize(
    "fault",
    [
        "[[fail:529;count=2;retry-after-ms=5]]",
        "[[fail:500;count=1]]",
        "[[fail:503;count=1]]",
        "[[stream_error:after=2;count=1]]",
        "[[stream_error:after=1;count=1;type=api_error]]",
        "[[drop:after=2;count=1]]",
        "[[truncate:after=3;count=1]]",
        "[[fail:429;count=2;retry-after=0]]",
    ],
)
async def test_transient_faults_are_retried_and_partial_output_is_not_duplicated(
    fake_api: FakeApi, make_settings: MakeSettings, fault: str
) -> None:
    fake_api.config.chunk_words = 1
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(runtime, TaskRequest(task=f"{fault} [[words:6]]"))
    assert snap.state is TaskState.COMPLETED, snap.error
    assert snap.output == "w1 w2 w3 w4 w5 w6"
    assert snap.attempts >= 2


async def test_rate_limits_that_outlast_the_timeout_fail_as_rate_limited(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with api_runtime(make_settings()) as runtime:
        limited, sibling = await run_tasks(
            runtime,
            TaskRequest(task="[[fail:429;retry-after=0.05]]", timeout_s=0.5),
            TaskRequest(task="[[reply:fine]]"),
        )
    assert limited.state is TaskState.FAILED
    assert limited.error is not None and limited.error.kind is ErrorKind.RATE_LIMITED
    assert "siblings kept their results" in limited.error.message
    assert limited.attempts > 1
    assert sibling.output == "fine"


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        ("[[fail:400;message=max_tokens: too large]]", ErrorKind.INVALID_INPUT, "max_tokens: too large"),
        ("[[fail:404;message=model: nope]]", ErrorKind.INVALID_INPUT, "model id"),
        ("[[fail:413]]", ErrorKind.INVALID_INPUT, "fewer files"),
        ("[[fail:401]]", ErrorKind.BACKEND_UNAVAILABLE, "ANTHROPIC_API_KEY"),
        ("[[fail:403]]", ErrorKind.BACKEND_UNAVAILABLE, "credentials"),
        ("[[fail:529;should-retry=false]]", ErrorKind.API_ERROR, "529"),
        (
            "[[stream_error:after=1;type=invalid_request_error]]",
            ErrorKind.INVALID_INPUT,
            "rejected the request",
        ),
        ("[[stream_error:after=1;type=authentication_error]]", ErrorKind.BACKEND_UNAVAILABLE, "credentials"),
    ],
)
async def test_permanent_errors_fail_at_once_with_a_message_that_says_what_to_do(
    fake_api: FakeApi, make_settings: MakeSettings, fault: str, kind: ErrorKind, words: str
) -> None:
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(runtime, TaskRequest(task=fault))
    assert snap.state is TaskState.FAILED
    assert snap.error is not None and snap.error.kind is kind
    assert words in snap.error.message
    # Counted by content: a request an earlier test left on the wire may still land after the reset.
    assert sum(fault in json.dumps(r.body) for r in fake_api.requests) == 1


async def test_an_unreachable_api_is_retried_until_the_deadline(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(runtime, TaskRequest(task="hello", timeout_s=0.5))
    assert snap.state is TaskState.FAILED
    assert snap.error is not None and snap.error.kind is ErrorKind.API_ERROR
    assert "could not connect" in snap.error.message and snap.attempts > 1


async def test_warm_first_pays_for_one_cache_write_and_siblings_read_it(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    shared = "The project's conventions, repeated to be long enough to cache. " * 200
    async with api_runtime(make_settings()) as runtime:
        snaps = await run_tasks(
            runtime, *(TaskRequest(task=f"part {i}") for i in range(6)), shared_context=shared
        )
    assert all(s.state is TaskState.COMPLETED for s in snaps)
    stats = fake_api.stats()
    assert (stats.cache_writes, stats.cache_reads) == (1, 5)
    assert sum(1 for s in snaps if s.usage.cache_write_tokens) == 1
    assert sum(1 for s in snaps if s.usage.cache_read_tokens) == 5
    assert all(r.body["system"][0].get("cache_control") == {"type": "ephemeral"} for r in fake_api.requests)


async def test_a_task_past_its_timeout_stops_its_request(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(runtime, TaskRequest(task="[[hold]]", timeout_s=0.3))
        await idle(fake_api)
    assert snap.state is TaskState.FAILED
    assert snap.error is not None and snap.error.kind is ErrorKind.TIMEOUT


async def test_cancel_and_shutdown_leave_no_request_running(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with api_runtime(make_settings()) as runtime:
        registry = runtime.registry
        receipt = await registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task=f"{i} [[hold]]") for i in range(4)]), caller=ME
        )
        ids = [t.task_id for t in receipt.tasks]
        await held(fake_api, 4)
        outcome = registry.cancel(ids[:1], caller=ME)
        with anyio.fail_after(5):
            await registry.wait(outcome.cancelled)
        assert registry.snapshot(ids[0], caller=ME).state is TaskState.CANCELLED
    assert [s.state for s in registry.snapshots(ids)] == [TaskState.CANCELLED] + [TaskState.INTERRUPTED] * 3
    await idle(fake_api)


async def test_without_credentials_spawning_fails_with_how_to_configure_them(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    async with api_runtime(make_settings()) as runtime:
        with pytest.raises(BackendUnavailable, match="ANTHROPIC_API_KEY"):
            await runtime.registry.spawn(SpawnRequest(tasks=[TaskRequest(task="x")]), caller=ME)
    assert fake_api.requests == []


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("${ANTHROPIC_API_KEY}", "does not expand variables"),
        ("sk-ant-...", "ANTHROPIC_API_KEY holds a placeholder"),
        ("sk-ant-api03-\u2026", "ANTHROPIC_API_KEY holds a placeholder"),
    ],
)
async def test_a_placeholder_key_is_reported_as_such_without_a_request(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, key: str, words: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    async with api_runtime(make_settings()) as runtime:
        with pytest.raises(BackendUnavailable, match=re.escape(words)):
            await runtime.registry.spawn(SpawnRequest(tasks=[TaskRequest(task="x")]), caller=ME)
    assert fake_api.requests == [] and fake_api.token_counts == []


async def test_an_output_schema_is_sent_for_constrained_decoding_and_a_repair_turn_follows_a_bad_answer(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    import base64
    import json

    good = {"n": 3}
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 1}}}
    then = base64.b64encode(json.dumps(good).encode()).decode()
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(
            runtime, TaskRequest(task=f"count [[reply:not json]] [[then64:{then}]]", output_schema=schema)
        )
    assert snap.state is TaskState.COMPLETED
    assert snap.structured == good and snap.attempts == 2
    first, repair = fake_api.requests
    sent = first.body["output_config"]["format"]
    assert sent["type"] == "json_schema" and sent["schema"]["required"] == ["n"]
    assert [m["role"] for m in repair.body["messages"]] == ["user", "assistant", "user"]
    assert repair.body["messages"][1]["content"] == "not json"
    assert "not JSON" in repair.body["messages"][2]["content"]


async def test_the_findings_schema_is_accepted_by_the_sdk_for_constrained_decoding(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with api_runtime(make_settings()) as runtime:
        (snap,) = await run_tasks(
            runtime, TaskRequest(task='[[reply:{"findings": []}]]', output_schema="findings")
        )
    assert snap.state is TaskState.COMPLETED and snap.structured == {"findings": []}
    assert "output_config" in fake_api.requests[0].body
