"""The batch backend through the real SDK over real HTTP, against the fake Messages API's batch endpoints."""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

from server import (
    BackendUnavailable,
    ErrorKind,
    Settings,
    SpawnRequest,
    SubagentRequest,
    TaskFailure,
    TaskRegistry,
    TaskRequest,
    TaskSnapshot,
    TaskState,
    Tokens,
    open_registry,
    open_runtime,
)
from server.app.runtime import make_client
from server.backends.batch import DEFAULT_TIMEOUT_S, BatchBackend
from server.backends.roster import Roster
from server.config.pricing import PriceTable
from server.intake.files import FileReader
from server.intake.prepare import prepare
from tests.fake_api import FakeApi
from tests.server.fakes import ME

MakeSettings = Callable[..., Settings]
WAIT = 10.0  # upper bound for every wait; no test relies on timing


@asynccontextmanager
async def batch_registry(settings: Settings, **options: Any) -> AsyncGenerator[TaskRegistry, None]:
    """A registry whose only backend is a running batch backend that polls every few ms."""
    options = {"poll_min_s": 0.01, "poll_max_s": 0.05, "settle_s": 0.01} | options
    client = make_client(settings)
    try:
        async with (
            BatchBackend(client, PriceTable.load(None), **options).running() as backend,
            open_registry(settings, backend) as registry,
        ):
            yield registry
    finally:
        await client.close()


async def spawn(registry: TaskRegistry, *tasks: str, **fields: Any) -> list[str]:
    receipt = await registry.spawn(
        SpawnRequest(tasks=[TaskRequest(task=t, **fields) for t in tasks]), caller=ME
    )
    return [t.task_id for t in receipt.tasks]


async def finished(registry: TaskRegistry, ids: list[str]) -> list[TaskSnapshot]:
    with anyio.fail_after(WAIT):
        await registry.wait(ids)
    return registry.snapshots(ids)


async def calls(fake: FakeApi, endpoint: str, n: int = 1) -> None:
    """Wait until the fake answered ``n`` calls of one batch endpoint."""
    with anyio.fail_after(WAIT + 5):
        assert await anyio.to_thread.run_sync(fake.wait_batch_calls, endpoint, n, WAIT), f"no {endpoint}"


class NullSink:
    """A TaskSink that ignores what it is told."""

    def __init__(self, task_id: str = "t-null") -> None:
        self.task_id = task_id

    def response_started(self) -> None: ...
    def append(self, text: str) -> None: ...
    def restart(self, note: str, cause: ErrorKind) -> None: ...
    def status(self, text: str) -> None: ...
    def add_usage(self, model: str, tokens: Tokens, cost_usd: float | None = None) -> None: ...
    def usage_so_far(self, model: str, tokens: Tokens) -> None: ...


def sent_batches(fake: FakeApi) -> list[list[dict[str, Any]]]:
    """The requests of every batch the fake was asked to create."""
    return [r.body["requests"] for r in fake.requests if r.path == "/v1/messages/batches" and r.body]


async def test_a_spawn_becomes_one_batch_and_each_task_gets_its_own_answer_from_results_out_of_order(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings()) as registry:
        ids = await spawn(registry, *(f"part {i} [[reply:answer {i}]]" for i in range(5)))
        snaps = await finished(registry, ids)
    assert [(s.state, s.output, s.backend) for s in snaps] == [
        (TaskState.COMPLETED, f"answer {i}", "batch") for i in range(5)
    ]
    assert (fake_api.stats().batches, fake_api.stats().batch_requests) == (1, 5)
    (requests,) = sent_batches(fake_api)
    assert sorted(r["custom_id"] for r in requests) == sorted(ids)  # found by task ID in the console
    params = requests[0]["params"]
    assert params["model"] == "claude-sonnet-5-5" and "stream" not in params
    assert params["system"][0]["text"].startswith("You are one of several subagents")
    assert "part 0" in params["messages"][0]["content"]


async def test_errored_and_expired_requests_fail_only_their_own_tasks_with_clear_messages(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings()) as registry:
        ids = await spawn(
            registry,
            "[[reply:fine]]",
            "[[batch:expired]]",
            "[[batch:errored;type=overloaded_error;message=too busy]]",
            "[[fail:400;message=max_tokens: too large]]",
            "[[reply:also fine]]",
        )
        ok, expired, errored, invalid, also_ok = await finished(registry, ids)
    assert (ok.output, also_ok.output) == ("fine", "also fine")
    assert expired.error is not None and expired.error.kind is ErrorKind.TIMEOUT
    assert "expired" in expired.error.message and "spawn it again" in expired.error.message
    assert errored.error is not None and errored.error.kind is ErrorKind.API_ERROR
    assert "overloaded_error: too busy" in errored.error.message
    assert invalid.error is not None and invalid.error.kind is ErrorKind.INVALID_INPUT
    assert "max_tokens: too large" in invalid.error.message and "Change the task" in invalid.error.message
    assert fake_api.stats().batches == 1


async def test_usage_and_cost_are_reported_at_the_batch_discount(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings()) as registry:
        (snap,) = await finished(registry, await spawn(registry, "[[words:40]]"))
    usage = snap.usage
    assert usage.output_tokens == 40 and usage.input_tokens > 0
    tokens = Tokens(
        usage.input_tokens, usage.output_tokens, usage.cache_write_tokens, usage.cache_read_tokens
    )
    full = PriceTable.load(None).cost("claude-sonnet-5-5", tokens)
    assert full is not None and usage.cost_usd == pytest.approx(full / 2)


async def test_an_output_schema_goes_with_the_request_and_a_bad_answer_is_repaired_in_a_second_batch(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    good = base64.b64encode(json.dumps({"n": 3}).encode()).decode()
    async with batch_registry(make_settings()) as registry:
        ids = await spawn(registry, f"count [[reply:not json]] [[then64:{good}]]", output_schema=schema)
        (snap,) = await finished(registry, ids)
    assert (snap.state, snap.structured, snap.attempts) == (TaskState.COMPLETED, {"n": 3}, 2)
    (first,), (repair,) = sent_batches(fake_api)
    assert first["params"]["output_config"]["format"]["type"] == "json_schema"
    assert [m["role"] for m in repair["params"]["messages"]] == ["user", "assistant", "user"]
    assert repair["params"]["messages"][1]["content"] == "not json"


async def test_status_lines_show_the_batch_and_its_progress(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings()) as registry:
        ids = await spawn(registry, "[[hold]]", "b", "c")
        await calls(fake_api, "retrieve", 2)
        notes = [s.note or "" for s in registry.snapshots(ids)]
        fake_api.release()
        snaps = await finished(registry, ids)
    assert all(re.fullmatch(r"in batch msgbatch_\w+: 0 of 3 requests done \(in_progress\)", n) for n in notes)
    assert [s.state for s in snaps] == [TaskState.COMPLETED] * 3


async def test_transient_faults_on_every_batch_call_are_retried_and_the_results_still_arrive(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.batch_failures = {"create": [529], "retrieve": [429, 500], "results": [503]}
    async with batch_registry(make_settings()) as registry:
        snaps = await finished(registry, await spawn(registry, "[[reply:a]]", "[[reply:b]]"))
    assert [(s.state, s.output) for s in snaps] == [(TaskState.COMPLETED, "a"), (TaskState.COMPLETED, "b")]
    stats = fake_api.stats()
    assert [stats.statuses[status] for status in (529, 429, 500, 503)] == [1, 1, 1, 1]
    assert stats.batches == 1  # the refused create was retried, not duplicated


async def test_a_batch_the_provider_refuses_fails_every_task_of_it_with_the_reason(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.batch_failures = {"create": [400]}
    async with batch_registry(make_settings()) as registry:
        snaps = await finished(registry, await spawn(registry, "a", "b"))
    for snap in snaps:
        assert snap.state is TaskState.FAILED and snap.error is not None
        assert snap.error.kind is ErrorKind.INVALID_INPUT
        assert snap.error.message.startswith("could not create the batch: the Messages API rejected")
    assert fake_api.stats().batch_calls == {"create": 1}


async def test_cancelling_every_task_of_a_sent_batch_cancels_the_batch_at_the_provider(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings()) as registry:
        ids = await spawn(registry, "[[hold]]", "b", "c")
        await calls(fake_api, "retrieve")
        registry.cancel(ids, caller=ME)
        snaps = await finished(registry, ids)
    assert [s.state for s in snaps] == [TaskState.CANCELLED] * 3
    stats = fake_api.stats()
    assert (stats.batches_canceled, stats.batch_calls["cancel"]) == (1, 1)


async def test_cancelling_one_task_of_a_batch_leaves_its_siblings_to_complete(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings()) as registry:
        ids = await spawn(registry, "[[hold]] [[reply:a]]", "[[reply:b]]", "[[reply:c]]")
        await calls(fake_api, "retrieve")
        registry.cancel(ids[1:2], caller=ME)
        with anyio.fail_after(WAIT):
            await registry.wait(ids[1:2])
        fake_api.release()
        snaps = await finished(registry, ids)
    assert [(s.state, s.output) for s in snaps] == [
        (TaskState.COMPLETED, "a"),
        (TaskState.CANCELLED, None),
        (TaskState.COMPLETED, "c"),
    ]
    assert "cancel" not in fake_api.stats().batch_calls


async def test_a_task_cancelled_before_its_batch_is_sent_is_left_out_of_it(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    # The window is wide (the three tasks start a few ms apart) so that a loaded machine cannot close
    # it before the third task has joined; the test waits it out once.
    async with batch_registry(make_settings(), window_s=2.0) as registry:
        ids = await spawn(registry, "[[reply:a]]", "[[reply:b]]", "[[reply:c]]")
        with anyio.fail_after(WAIT):
            while registry.counts(ids).running < 3:  # every task is in the batch's window
                await anyio.wait_all_tasks_blocked()
        assert fake_api.stats().batch_calls == {}
        registry.cancel(ids[:1], caller=ME)
        snaps = await finished(registry, ids)
    assert [s.state for s in snaps] == [TaskState.CANCELLED, TaskState.COMPLETED, TaskState.COMPLETED]
    (requests,) = sent_batches(fake_api)
    assert len(requests) == 2


async def test_tasks_that_leave_while_creating_the_batch_is_retried_never_create_it(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.batch_failures = {"create": [529]}
    async with batch_registry(make_settings(), poll_min_s=30, poll_max_s=60) as registry:
        ids = await spawn(registry, "a", "b")
        await calls(fake_api, "create")  # refused: the next try is 20 s or more away
        registry.cancel(ids, caller=ME)
        snaps = await finished(registry, ids)
    assert [s.state for s in snaps] == [TaskState.CANCELLED] * 2
    assert fake_api.stats().batch_calls == {"create": 1}


async def test_batch_tasks_hold_none_of_the_servers_slots(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings(max_concurrency=1)) as registry:
        ids = await spawn(registry, *(f"[[hold]] [[reply:{i}]]" for i in range(5)))
        await calls(fake_api, "retrieve")
        assert registry.counts(ids).running == 5
        fake_api.release()
        snaps = await finished(registry, ids)
    assert [s.output for s in snaps] == [str(i) for i in range(5)]
    assert (fake_api.stats().batches, fake_api.stats().batch_requests) == (1, 5)


async def test_a_batch_task_waits_25_hours_unless_it_says_otherwise(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    client = make_client(settings)
    try:
        backend = BatchBackend(client, PriceTable.load(None))
        request = SpawnRequest(tasks=[TaskRequest(task="a"), TaskRequest(task="b", timeout_s=60)])
        reader = FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)
        intake = await prepare(request, settings, reader, Roster.single(backend))
    finally:
        await client.close()
    assert DEFAULT_TIMEOUT_S == backend.traits.default_timeout_s == 25 * 3600
    assert [t.spec.timeout_s for t in intake.tasks] == [25 * 3600, 60]


async def test_the_servers_task_timeout_does_not_cut_a_batch_short(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with batch_registry(make_settings(task_timeout_s=0.2), poll_max_s=0.1) as registry:
        ids = await spawn(registry, "[[hold]] [[reply:late]]")
        await calls(fake_api, "retrieve", 5)  # polled for longer than task_timeout_s
        fake_api.release()
        (snap,) = await finished(registry, ids)
    assert (snap.state, snap.output) == (TaskState.COMPLETED, "late")


async def test_shutdown_with_a_batch_in_flight_cancels_it_and_leaves_nothing_running(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    before = {task.id for task in anyio.get_running_tasks()}
    with anyio.fail_after(WAIT):
        async with batch_registry(make_settings()) as registry:
            ids = await spawn(registry, "[[hold]]", "b")
            await calls(fake_api, "retrieve")
    assert {task.id for task in anyio.get_running_tasks()} == before
    assert [s.state for s in registry.snapshots(ids)] == [TaskState.INTERRUPTED] * 2
    assert fake_api.stats().batches_canceled == 1


async def test_a_task_naming_the_batch_backend_runs_end_to_end_on_the_servers_runtime(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    async with open_runtime(make_settings()) as runtime:
        ids = await spawn(runtime.registry, "[[reply:from a batch]]", backend="batch")
        (snap,) = await finished(runtime.registry, ids)
    assert (snap.state, snap.output, snap.backend) == (TaskState.COMPLETED, "from a batch", "batch")
    assert fake_api.stats().batches == 1


async def test_a_key_the_batches_api_refuses_fails_the_batch_and_stands_for_the_messages_api_too(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.api_keys = ["the-real-key"]
    async with open_runtime(make_settings()) as runtime:
        ids = await spawn(runtime.registry, "one", "two", backend="batch")
        snaps = await finished(runtime.registry, ids)
        with pytest.raises(BackendUnavailable, match="Fix ANTHROPIC_API_KEY"):
            await spawn(runtime.registry, "on the Messages API", backend="anthropic")
    assert [(s.state, s.error.kind if s.error else None) for s in snaps] == [
        (TaskState.FAILED, ErrorKind.BACKEND_UNAVAILABLE)
    ] * 2
    assert snaps[0].error is not None and "restart the server" in snaps[0].error.message
    assert fake_api.stats().batch_calls == {"create": 1}


async def test_a_batch_to_an_endpoint_that_never_answers_fails_after_the_grace_naming_it(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    async with open_runtime(make_settings(connect_grace_s=0.2)) as runtime:
        (snap,) = await finished(runtime.registry, await spawn(runtime.registry, "x", backend="batch"))
    assert snap.error is not None and snap.error.kind is ErrorKind.BACKEND_UNAVAILABLE
    assert f"could not connect to the Messages API at {url}" in snap.error.message


async def test_an_error_in_the_body_of_running_comes_out_as_itself(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    client = make_client(make_settings())
    try:
        with pytest.raises(ValueError, match="the body failed"):
            async with BatchBackend(client, PriceTable.load(None)).running():
                raise ValueError("the body failed")
    finally:
        await client.close()


async def test_a_backend_that_is_not_running_refuses_tasks_as_unavailable(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    client = make_client(make_settings())
    request = SubagentRequest(
        model="claude-sonnet-5-5", max_tokens=10, system="", prompt="x", cache_system=False
    )
    try:
        with pytest.raises(TaskFailure) as caught:
            await BatchBackend(client, PriceTable.load(None)).run(request, NullSink())
    finally:
        await client.close()
    assert caught.value.kind is ErrorKind.BACKEND_UNAVAILABLE
    assert fake_api.stats().batch_calls == {}


async def test_a_task_id_the_api_would_refuse_or_that_repeats_in_a_batch_gets_a_stand_in_custom_id(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    client = make_client(make_settings())
    answers: dict[int, str] = {}

    async def ask(backend: BatchBackend, index: int, task_id: str) -> None:
        request = SubagentRequest(
            model="claude-sonnet-5-5",
            max_tokens=10,
            system="",
            prompt=f"[[reply:answer {index}]]",
            cache_system=False,
        )
        answers[index] = (await backend.run(request, NullSink(task_id))).text

    try:
        async with BatchBackend(
            client, PriceTable.load(None), poll_min_s=0.01, poll_max_s=0.05
        ).running() as b:
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    for index, task_id in enumerate(["t-same", "t-same", "not valid!", "t-own"]):
                        tg.start_soon(ask, b, index, task_id)
    finally:
        await client.close()
    assert answers == {i: f"answer {i}" for i in range(4)}
    (requests,) = sent_batches(fake_api)
    custom_ids = [r["custom_id"] for r in requests]
    assert len(set(custom_ids)) == 4 and {"t-same", "t-own"} <= set(custom_ids)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", c) for c in custom_ids)


async def test_a_batch_created_although_its_create_call_failed_is_found_and_used_not_sent_twice(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.batch_failures = {"create_after": [500]}  # created, but the answer is lost
    async with batch_registry(make_settings()) as registry:
        snaps = await finished(registry, await spawn(registry, "[[reply:a]]", "[[reply:b]]"))
    assert [(s.state, s.output) for s in snaps] == [(TaskState.COMPLETED, "a"), (TaskState.COMPLETED, "b")]
    stats = fake_api.stats()
    assert stats.batches == 1 and stats.batch_calls["create"] == 1 and stats.batch_calls["list"] >= 1


async def test_a_create_that_failed_before_making_anything_is_sent_again_after_looking(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.batch_failures = {"create": [500]}  # refused before anything was made
    async with batch_registry(make_settings()) as registry:
        snaps = await finished(registry, await spawn(registry, "[[reply:a]]"))
    assert [(s.state, s.output) for s in snaps] == [(TaskState.COMPLETED, "a")]
    stats = fake_api.stats()
    assert stats.batches == 1 and stats.batch_calls["create"] == 2
    assert stats.batch_calls["list"] == 2  # looked twice, settle_s apart, before sending it again


async def test_when_several_new_batches_could_be_the_lost_one_none_is_taken_and_none_is_sent_again(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    await their_batch(settings)  # of the same size as the spawn's
    fake_api.config.batch_failures = {"create_after": [502]}
    async with batch_registry(settings) as registry:
        (snap,) = await finished(registry, await spawn(registry, "[[reply:a]]"))
    assert snap.state is TaskState.FAILED and snap.error is not None
    assert snap.error.kind is ErrorKind.API_ERROR
    assert "2 new batches of this size exist" in snap.error.message and "not sent again" in snap.error.message
    assert fake_api.stats().batches == 2  # theirs and the lost one: no third


async def their_batch(settings: Settings) -> None:
    """Another program with the same key sends a batch of one request."""
    client = make_client(settings)
    try:
        params: MessageCreateParamsNonStreaming = {
            "model": "claude-sonnet-5-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        }
        await client.messages.batches.create(requests=[{"custom_id": "theirs", "params": params}])
    finally:
        await client.close()


async def test_a_batch_taken_for_a_lost_one_that_holds_none_of_its_requests_is_called_another_programs(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    settings = make_settings()
    await their_batch(settings)
    fake_api.config.batch_failures = {"create": [500]}  # nothing made, but the answer cannot tell
    async with batch_registry(settings) as registry:
        (snap,) = await finished(registry, await spawn(registry, "[[reply:a]]"))
    assert snap.state is TaskState.FAILED and snap.error is not None
    assert "holds none of its requests: it was another program's" in snap.error.message
    assert "spawn the task again" in snap.error.message


async def test_a_batch_a_lost_create_made_is_cancelled_when_its_tasks_leave_before_it_is_found(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    fake_api.config.batch_failures = {"create_after": [500]}  # made, but the answer is lost
    async with batch_registry(make_settings(), poll_min_s=30, poll_max_s=60) as registry:
        ids = await spawn(registry, "a", "b")
        await calls(fake_api, "create")  # the next try, and its look, are 20 s or more away
        registry.cancel(ids, caller=ME)
        snaps = await finished(registry, ids)
        await calls(fake_api, "cancel")
    assert [s.state for s in snaps] == [TaskState.CANCELLED] * 2
    assert fake_api.stats().batch_calls == {"create": 1, "list": 1, "cancel": 1}
