"""Failing fast where failing is certain: refused credentials and an endpoint that never answered, through
the server's real runtime and the real SDK over real HTTP (the fake Messages API, and closed ports)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import anyio
import pytest

from server import (
    BackendUnavailable,
    ErrorKind,
    RetryNotice,
    Runtime,
    Settings,
    SpawnRequest,
    TaskRequest,
    TaskSnapshot,
    TaskState,
    open_runtime,
)
from tests.fake_api import FakeApi, serve_in_thread
from tests.server.fakes import ME

MakeSettings = Callable[..., Settings]


async def run_tasks(runtime: Runtime, *tasks: TaskRequest) -> list[TaskSnapshot]:
    receipt = await runtime.registry.spawn(SpawnRequest(tasks=list(tasks)), caller=ME)
    ids = [t.task_id for t in receipt.tasks]
    with anyio.fail_after(20):
        await runtime.registry.wait(ids)
    return runtime.registry.snapshots(ids)


def errors_of(snaps: list[TaskSnapshot]) -> list[tuple[TaskState, ErrorKind | None]]:
    return [(s.state, s.error.kind if s.error else None) for s in snaps]


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def retries() -> list[RetryNotice]:
    """Every retry the registry tells of (a test passes ``retries.append`` to ``on_retry``)."""
    return []


@pytest.mark.parametrize("variable", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
async def test_a_refused_key_fails_a_ten_task_spawn_with_one_request_naming_what_to_fix(
    fake_api: FakeApi, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv(variable, "sk-ant-api03-revoked")
    fake_api.config.api_keys = ["sk-ant-api03-the-real-one"]
    async with open_runtime(make_settings()) as runtime:
        snaps = await run_tasks(runtime, *(TaskRequest(task=f"part {i}") for i in range(10)))
        with pytest.raises(BackendUnavailable, match=variable):  # a later spawn: refused at the call
            await runtime.registry.spawn(SpawnRequest(tasks=[TaskRequest(task="again")]), caller=ME)
    assert errors_of(snaps) == [(TaskState.FAILED, ErrorKind.BACKEND_UNAVAILABLE)] * 10
    message = snaps[0].error.message if snaps[0].error else ""
    assert f"Fix {variable} in the server's environment" in message
    assert f"(and check ANTHROPIC_BASE_URL, {fake_api.base_url}: the key must be one" in message
    assert "restart the server" in message and "401 authentication_error: invalid x-api-key" in message
    assert all(s.error == snaps[0].error for s in snaps)
    # One request in all, the endpoint's check, which carries no task's text.
    assert fake_api.requests == []
    assert [(r.status, r.body["messages"]) for r in fake_api.token_counts] == [
        (401, [{"role": "user", "content": "ping"}])
    ]


async def test_a_key_refused_while_a_task_waits_to_retry_fails_it_without_another_request(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    waiting = anyio.Event()
    async with open_runtime(make_settings()) as runtime:
        runtime.registry.on_retry(lambda notice: waiting.set())
        spawned = await runtime.registry.spawn(
            SpawnRequest(tasks=[TaskRequest(task="[[fail:503;retry-after=50]] patient")]), caller=ME
        )
        with anyio.fail_after(10):
            await waiting.wait()  # it waits 50 s before its next try
            fake_api.config.api_keys = ["another-key"]  # the key is revoked meanwhile
            (refused,) = await run_tasks(runtime, TaskRequest(task="newcomer"))
            patient_id = spawned.tasks[0].task_id
            await runtime.registry.wait([patient_id])
        patient = runtime.registry.snapshot(patient_id, caller=ME)
    assert refused.error is not None and refused.error.kind is ErrorKind.BACKEND_UNAVAILABLE
    assert patient.error is not None and patient.error.kind is ErrorKind.BACKEND_UNAVAILABLE
    assert "refused the credentials" in patient.error.message
    assert sum("patient" in str(r.body) for r in fake_api.requests) == 1  # its first try only


async def test_a_403_refuses_one_model_for_the_rest_of_the_server_and_not_the_others(
    fake_api: FakeApi, make_settings: MakeSettings
) -> None:
    forbidden = "claude-opus-5-5"
    async with open_runtime(make_settings()) as runtime:
        (first,) = await run_tasks(runtime, TaskRequest(task="[[fail:403]]", model=forbidden))
        later, other = await run_tasks(
            runtime,
            TaskRequest(task="[[fail:403]] later", model=forbidden),
            TaskRequest(task="[[reply:fine]]", model="claude-sonnet-5-5"),
        )
    assert errors_of([first, later]) == [(TaskState.FAILED, ErrorKind.BACKEND_UNAVAILABLE)] * 2
    assert later.error is not None and f"the use of model {forbidden}" in later.error.message
    assert "ANTHROPIC_API_KEY" in later.error.message
    assert (other.state, other.output) == (TaskState.COMPLETED, "fine")
    assert [r.body["model"] for r in fake_api.requests] == [forbidden, "claude-sonnet-5-5"]


async def test_a_refused_endpoint_fails_the_spawn_after_the_grace_with_one_verdict(
    fake_api: FakeApi,
    make_settings: MakeSettings,
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,
    retries: list[RetryNotice],
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    async with open_runtime(make_settings(connect_grace_s=0.5)) as runtime:
        runtime.registry.on_retry(retries.append)
        snaps = await run_tasks(runtime, *(TaskRequest(task=f"part {i}", timeout_s=60) for i in range(10)))
        later = await run_tasks(runtime, *(TaskRequest(task=f"later {i}", timeout_s=60) for i in range(3)))
    assert errors_of(snaps + later) == [(TaskState.FAILED, ErrorKind.BACKEND_UNAVAILABLE)] * 13
    message = snaps[0].error.message if snaps[0].error else ""
    assert f"could not connect to the Messages API at {url}" in message
    assert "Check ANTHROPIC_BASE_URL (set to it), the network, and any proxy" in message
    assert all(s.error == snaps[0].error for s in snaps)  # one verdict, the same for every task
    # One task tried it on one clock while the others waited; the later spawn was not given a grace.
    assert len({n.task_id for n in retries}) == 1
    assert all(n.cause is ErrorKind.API_ERROR and "could not connect" in n.note for n in retries)
    assert "has not answered yet, and is given up in" in retries[0].note


async def test_an_endpoint_that_answered_once_and_then_refuses_is_retried_for_the_tasks_lifetime(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, retries: list[RetryNotice]
) -> None:
    fake = serve_in_thread()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    try:
        async with open_runtime(make_settings(connect_grace_s=0.1)) as runtime:
            runtime.registry.on_retry(retries.append)
            (answered,) = await run_tasks(runtime, TaskRequest(task="[[reply:hello]]"))
            fake.stop()  # the provider drops: its port is closed now
            (dropped,) = await run_tasks(runtime, TaskRequest(task="again", timeout_s=1.5))
    finally:
        fake.stop()
    assert answered.output == "hello"
    assert dropped.state is TaskState.FAILED
    assert dropped.error is not None and dropped.error.kind is ErrorKind.API_ERROR  # not given up early
    assert "timeout" in dropped.error.message and dropped.attempts > 1
    assert any("could not connect" in n.note for n in retries)


async def test_an_answer_clears_the_verdict_on_an_endpoint_that_could_not_be_reached(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    async with open_runtime(make_settings(connect_grace_s=0.2)) as runtime:
        (given_up,) = await run_tasks(runtime, TaskRequest(task="first"))
        fake = serve_in_thread(port=closed_port)  # the endpoint comes up
        try:
            first, second = await run_tasks(
                runtime, TaskRequest(task="[[reply:one]]"), TaskRequest(task="[[reply:two]]")
            )
        finally:
            fake.stop()
    assert given_up.error is not None and given_up.error.kind is ErrorKind.BACKEND_UNAVAILABLE
    assert [first.output, second.output] == ["one", "two"]
