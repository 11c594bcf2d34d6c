from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from server import (
    BackendUnavailable,
    ErrorKind,
    InvalidInput,
    RegistryClosed,
    RetryNotice,
    Settings,
    SpawnRequest,
    SubagentRequest,
    SubagentResult,
    TaskFailure,
    TaskRegistry,
    TaskRequest,
    TaskSink,
    TaskState,
    UnknownTask,
    open_registry,
)
from server.core.store import MemoryStore
from tests.server.engines import OpenEngine, until, until_running
from tests.server.fakes import ME, ScriptedBackend, gated

MakeSettings = Callable[..., Settings]


def spawn_of(n: int, **kwargs: Any) -> SpawnRequest:
    return SpawnRequest(tasks=[TaskRequest(task=f"part {i}", label=f"p{i}") for i in range(n)], **kwargs)


@asynccontextmanager
async def running(backend: ScriptedBackend, settings: Settings) -> AsyncGenerator[TaskRegistry]:
    async with open_registry(settings, backend) as registry:
        yield registry


async def test_all_tasks_run_at_once_up_to_the_limit(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()
    backend = ScriptedBackend(gated(release))
    async with open_engine(make_settings(max_concurrency=20), backend) as registry:
        receipt = await registry.spawn(spawn_of(12), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(10):
            await backend.wait_calls(12)
            await until(registry, ids[-1], lambda snap: snap.state is TaskState.RUNNING)
        await registry.select(ids, None, caller=ME)
        assert registry.counts(ids).running == 12
        assert backend.in_flight == 12
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)
        assert registry.counts(ids).completed == 12
        assert [s.output for s in registry.snapshots(ids)] == ["done"] * 12


async def test_concurrency_limit_queues_the_rest(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()
    backend = ScriptedBackend(gated(release))
    async with open_engine(make_settings(max_concurrency=3), backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(8), caller=ME)).tasks]
        with anyio.fail_after(10):
            await backend.wait_calls(3)
            await until_running(registry, ids, 3)
        await anyio.wait_all_tasks_blocked()
        await registry.select(ids, None, caller=ME)
        counts = registry.counts(ids)
        assert (counts.running, counts.queued) == (3, 5)
        assert registry.statistics().running == 3
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)
        assert backend.max_in_flight == 3
        assert registry.counts(ids).completed == 8


async def test_a_spawn_can_ask_for_less_concurrency_than_the_server(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()
    backend = ScriptedBackend(gated(release))
    async with open_engine(make_settings(max_concurrency=10), backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(6, max_concurrency=2), caller=ME)).tasks]
        with anyio.fail_after(10):
            await backend.wait_calls(2)
            await until(registry, ids[1], lambda snap: snap.state is TaskState.RUNNING)
        await anyio.wait_all_tasks_blocked()
        await registry.select(ids, None, caller=ME)
        assert registry.counts(ids).running == 2 and len(backend.calls) == 2
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)
        assert backend.max_in_flight == 2


async def test_a_failing_task_leaves_its_siblings_and_the_registry_alone(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if "part 1" in request.prompt:
            sink.append("half an answer")
            raise TaskFailure(ErrorKind.API_ERROR, "the provider broke")
        if "part 2" in request.prompt:
            raise RuntimeError("a bug in a backend")
        return SubagentResult(text="fine", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler)
    async with open_engine(make_settings(), backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(4), caller=ME)).tasks]
        with anyio.fail_after(5):
            await registry.wait(ids)
        snaps = registry.snapshots(ids)
        assert [s.state for s in snaps] == [
            TaskState.COMPLETED,
            TaskState.FAILED,
            TaskState.FAILED,
            TaskState.COMPLETED,
        ]
        assert snaps[1].error is not None and snaps[1].error.kind is ErrorKind.API_ERROR
        assert snaps[1].output == "half an answer" and snaps[1].partial
        assert snaps[2].error is not None and snaps[2].error.kind is ErrorKind.INTERNAL
        again = await registry.spawn(spawn_of(1), caller=ME)
        with anyio.fail_after(5):
            await registry.wait([again.tasks[0].task_id])
        assert registry.snapshot(again.tasks[0].task_id, caller=ME).state is TaskState.COMPLETED


async def test_a_task_that_overruns_its_timeout_fails_as_timeout(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    backend = ScriptedBackend(gated(anyio.Event(), text="never"))  # the gate never opens
    async with open_engine(make_settings(), backend) as registry:
        request = SpawnRequest(tasks=[TaskRequest(task="slow", timeout_s=0.05)])
        task_id = (await registry.spawn(request, caller=ME)).tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        snap = registry.snapshot(task_id, caller=ME)
        assert snap.state is TaskState.FAILED
        assert snap.error is not None and snap.error.kind is ErrorKind.TIMEOUT
        assert "timeout_s" in snap.error.message
        assert snap.output == "n"  # the partial answer is kept
        assert backend.cancelled == 1


async def test_cancelling_a_queued_task_ends_it_and_never_runs_it(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()
    backend = ScriptedBackend(gated(release))
    async with open_engine(make_settings(max_concurrency=1), backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(2), caller=ME)).tasks]
        with anyio.fail_after(10):
            await backend.wait_calls(1)
            await until_running(registry, ids, 1)
        # The one slot's task: the first here; on Temporal whichever activity the worker took first.
        first, second = sorted(ids, key=lambda i: registry.snapshot(i, caller=ME).state is TaskState.QUEUED)
        outcome = registry.cancel([second], caller=ME)
        assert outcome.cancelled == [second]
        with anyio.fail_after(10):  # at once here; on Temporal once its workflow has the signal
            await until(registry, second, lambda snap: snap.state is TaskState.CANCELLED)
        release.set()
        with anyio.fail_after(5):
            await registry.wait([first, second])
        assert registry.snapshot(first, caller=ME).state is TaskState.COMPLETED
        assert len(backend.calls) == 1


async def test_cancelling_a_running_task_stops_its_backend_call(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    backend = ScriptedBackend(gated(anyio.Event()))
    async with open_engine(make_settings(), backend) as registry:
        task_id = (await registry.spawn(spawn_of(1), caller=ME)).tasks[0].task_id
        with anyio.fail_after(10):
            await backend.wait_calls(1)
            await until(registry, task_id, lambda snap: snap.state is TaskState.RUNNING)
        outcome = registry.cancel([task_id], caller=ME)
        assert registry.snapshot(task_id, caller=ME).cancel_requested
        with anyio.fail_after(5):
            await registry.wait(outcome.cancelled)
        snap = registry.snapshot(task_id, caller=ME)
        assert snap.state is TaskState.CANCELLED
        assert snap.note == "cancelled by cancel_tasks"
        assert backend.cancelled == 1
        again = registry.cancel([task_id], caller=ME)
        assert again.cancelled == [] and again.already_finished[0].state is TaskState.CANCELLED


async def test_shutdown_interrupts_every_unfinished_task_without_an_exception_group(
    make_settings: MakeSettings,
) -> None:
    backend = ScriptedBackend(gated(anyio.Event()))
    async with running(backend, make_settings(max_concurrency=2)) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(5), caller=ME)).tasks]
        with anyio.fail_after(5):
            await backend.wait_calls(2)
    snaps = registry.snapshots(ids)
    assert [s.state for s in snaps] == [TaskState.INTERRUPTED] * 5
    assert {s.note for s in snaps} == {"the server shut down before the task ended"}
    assert backend.in_flight == 0 and backend.cancelled == 2
    with pytest.raises(RegistryClosed):
        await registry.spawn(spawn_of(1), caller=ME)


async def test_shutdown_right_after_a_spawn_interrupts_tasks_whose_runner_never_started(
    make_settings: MakeSettings,
) -> None:
    backend = ScriptedBackend()
    async with running(backend, make_settings()) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(3), caller=ME)).tasks]
    assert {s.state for s in registry.snapshots(ids)} <= {TaskState.INTERRUPTED, TaskState.COMPLETED}
    assert all(s.state.terminal for s in registry.snapshots(ids))


async def test_warm_first_starts_one_task_and_releases_siblings_when_its_answer_begins(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    lead_answers = anyio.Event()
    release = anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        await lead_answers.wait()
        sink.response_started()
        await release.wait()
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler, caches_prompts=True)
    settings = make_settings(cache_min_tokens=100)
    async with open_engine(settings, backend) as registry:
        request = spawn_of(4, shared_context="shared words " * 200)
        ids = [t.task_id for t in (await registry.spawn(request, caller=ME)).tasks]
        with anyio.fail_after(10):
            await backend.wait_calls(1)
            await until_running(registry, ids, 1)
        await anyio.wait_all_tasks_blocked()
        assert len(backend.calls) == 1  # the siblings wait for the cache to be written
        assert registry.counts(ids).queued == 3
        assert backend.calls[0].cache_system
        lead_answers.set()
        with anyio.fail_after(10):
            await backend.wait_calls(4)
        release.set()
        with anyio.fail_after(10):
            await registry.wait(ids)
        assert registry.counts(ids).completed == 4


async def test_short_shared_context_starts_everything_at_once(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()
    backend = ScriptedBackend(gated(release), caches_prompts=True)
    async with open_engine(make_settings(), backend) as registry:
        ids = [
            t.task_id for t in (await registry.spawn(spawn_of(3, shared_context="short"), caller=ME)).tasks
        ]
        with anyio.fail_after(5):
            await backend.wait_calls(3)
        assert not backend.calls[0].cache_system
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)


async def test_a_lead_that_fails_still_lets_its_siblings_start(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if "part 0" in request.prompt:
            raise TaskFailure(ErrorKind.API_ERROR, "lead failed before answering")
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler, caches_prompts=True)
    async with open_engine(make_settings(cache_min_tokens=10), backend) as registry:
        ids = [
            t.task_id for t in (await registry.spawn(spawn_of(3, shared_context="x " * 100), caller=ME)).tasks
        ]
        with anyio.fail_after(10):  # not WARM_WAIT_S: the lead's end lets them go
            await registry.wait(ids)
        assert [s.state for s in registry.snapshots(ids)] == [
            TaskState.FAILED,
            TaskState.COMPLETED,
            TaskState.COMPLETED,
        ]


async def test_finished_tasks_beyond_the_count_limit_are_evicted_oldest_first(
    make_settings: MakeSettings,
) -> None:
    backend = ScriptedBackend()
    async with running(backend, make_settings(max_finished=3)) as registry:
        groups: list[str] = []
        for _ in range(5):
            receipt = await registry.spawn(spawn_of(1), caller=ME)
            groups.append(receipt.group_id)
            with anyio.fail_after(5):
                await registry.wait([receipt.tasks[0].task_id])
        assert len((await registry.list(caller=ME)).tasks) == 3
        with pytest.raises(UnknownTask, match="no group"):
            await registry.select(None, groups[0], caller=ME)
        assert await registry.select(None, groups[4], caller=ME)


async def test_finished_tasks_older_than_the_retention_are_evicted(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.core.table as table_module

    now = [1_000_000.0]
    monkeypatch.setattr(table_module.time, "time", lambda: now[0])
    backend = ScriptedBackend()
    async with running(backend, make_settings(retention_s=60)) as registry:
        task_id = (await registry.spawn(spawn_of(1), caller=ME)).tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        now[0] += 59
        assert await registry.select([task_id], None, caller=ME) == [task_id]
        now[0] += 2
        with pytest.raises(UnknownTask, match="no task with id"):
            await registry.select([task_id], None, caller=ME)


async def test_wait_reports_each_change_and_returns_when_all_ended(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()
    backend = ScriptedBackend(gated(release))
    changes = 0

    async def on_change(ended: list[str]) -> None:
        nonlocal changes
        changes += 1

    async with open_engine(make_settings(), backend) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(2), caller=ME)).tasks]
        with anyio.move_on_after(0.01):
            await registry.wait(ids, on_change)  # nothing ends while the gate is shut
        assert changes == 0
        release.set()
        with anyio.fail_after(10):
            await registry.wait(ids, on_change)
        assert changes >= 1
        assert registry.counts(ids).completed == 2


async def test_select_refuses_what_it_cannot_resolve(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async with running(ScriptedBackend(), make_settings()) as registry:
        receipt = await registry.spawn(spawn_of(1), caller=ME)
        task_id = receipt.tasks[0].task_id
        with pytest.raises(InvalidInput, match="not both"):
            await registry.select([task_id], receipt.group_id, caller=ME)
        with pytest.raises(InvalidInput, match="not neither"):
            await registry.select(None, None, caller=ME)
        with pytest.raises(InvalidInput, match="empty"):
            await registry.select([], None, caller=ME)
        with pytest.raises(UnknownTask, match=r"(?i)call list_tasks"):
            await registry.select(["t-nope"], None, caller=ME)
        with pytest.raises(UnknownTask, match="pass it as group_id"):
            await registry.select([receipt.group_id], None, caller=ME)
        with pytest.raises(UnknownTask, match="pass it in task_ids"):
            await registry.select(None, task_id, caller=ME)
        assert await registry.select([task_id, task_id], None, caller=ME) == [task_id]


async def test_spawn_refuses_when_the_backend_is_unavailable(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    backend = ScriptedBackend()
    backend.unavailable = "no key: set ANTHROPIC_API_KEY"
    async with open_engine(make_settings(), backend) as registry:
        with pytest.raises(BackendUnavailable, match="ANTHROPIC_API_KEY"):
            await registry.spawn(spawn_of(1), caller=ME)
        assert (await registry.list(caller=ME)).total == 0


async def test_spawn_refuses_past_the_unfinished_limit(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    backend = ScriptedBackend(gated(anyio.Event()))
    async with open_engine(make_settings(max_unfinished=4), backend) as registry:
        await registry.spawn(spawn_of(3), caller=ME)
        with pytest.raises(InvalidInput, match="limit of 4 unfinished"):
            await registry.spawn(spawn_of(2), caller=ME)
        await registry.spawn(spawn_of(1), caller=ME)


async def test_ids_are_unguessable_and_url_safe(make_settings: MakeSettings, open_engine: OpenEngine) -> None:
    async with running(ScriptedBackend(), make_settings()) as registry:
        receipt = await registry.spawn(spawn_of(50), caller=ME)
    ids = [t.task_id for t in receipt.tasks]
    assert len(set(ids)) == 50
    for task_id in [*ids, receipt.group_id]:
        prefix, token = task_id.split("-", 1)
        assert prefix in {"t", "g"}
        assert len(token) >= 16
        assert all(c.isalnum() or c in "-_" for c in token)


async def test_usage_and_cost_add_up_across_attempts(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    from server import Tokens

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.add_usage("claude-sonnet-5-5", Tokens(input_tokens=1000, output_tokens=10))
        sink.restart("retrying", ErrorKind.API_ERROR)
        sink.add_usage(
            "claude-sonnet-5-5", Tokens(input_tokens=1000, output_tokens=100, cache_read_tokens=500)
        )
        return SubagentResult(text="ok", model="claude-sonnet-5-5", stop_reason="end_turn")

    async with open_engine(make_settings(), ScriptedBackend(handler)) as registry:
        task_id = (await registry.spawn(spawn_of(1), caller=ME)).tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        snap = registry.snapshot(task_id, caller=ME)
    assert snap.attempts == 2
    assert (snap.usage.input_tokens, snap.usage.output_tokens, snap.usage.cache_read_tokens) == (
        2000,
        110,
        500,
    )
    expected = (2000 * 2.0 + 110 * 10.0 + 500 * 0.1) / 1_000_000
    assert snap.usage.cost_usd == pytest.approx(expected)


async def test_unknown_model_has_unknown_cost(make_settings: MakeSettings, open_engine: OpenEngine) -> None:
    from server import Tokens

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.add_usage("some-other-model", Tokens(input_tokens=10, output_tokens=10))
        return SubagentResult(text="ok", model="some-other-model", stop_reason="end_turn")

    async with open_engine(make_settings(), ScriptedBackend(handler)) as registry:
        task_id = (await registry.spawn(spawn_of(1), caller=ME)).tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        assert registry.snapshot(task_id, caller=ME).usage.cost_usd is None
        assert registry.usage([task_id]).cost_usd is None


async def test_an_answer_cut_by_max_tokens_says_so(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        return SubagentResult(text="cut", model=request.model, stop_reason="max_tokens")

    async with open_engine(make_settings(), ScriptedBackend(handler)) as registry:
        task_id = (await registry.spawn(spawn_of(1), caller=ME)).tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        snap = registry.snapshot(task_id, caller=ME)
    assert snap.state is TaskState.COMPLETED and snap.stop_reason == "max_tokens"
    assert snap.note is not None and "max_tokens" in snap.note


async def test_a_running_task_shows_its_partial_output(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    release = anyio.Event()
    backend = ScriptedBackend(gated(release, text="hello"))
    async with open_engine(make_settings(), backend) as registry:
        task_id = (await registry.spawn(spawn_of(1), caller=ME)).tasks[0].task_id
        with anyio.fail_after(10):
            await backend.wait_calls(1)
            snap = await until(registry, task_id, lambda snap: snap.output is not None)
        assert (snap.state, snap.output, snap.partial) == (TaskState.RUNNING, "h", True)
        release.set()
        with anyio.fail_after(10):
            await registry.wait([task_id])
        snap = registry.snapshot(task_id, caller=ME)
        assert (snap.state, snap.output, snap.partial) == (TaskState.COMPLETED, "hello", False)


async def test_an_error_in_the_body_comes_out_as_itself_not_as_an_exception_group(
    make_settings: MakeSettings,
) -> None:
    # The embedded executor's: on Temporal the tasks outlive the front end that ends (they are the workers').
    backend = ScriptedBackend(gated(anyio.Event()))
    seen: list[TaskRegistry] = []
    ids: list[str] = []

    async def body() -> None:
        async with open_registry(make_settings(), backend) as registry:
            seen.append(registry)
            ids.extend(t.task_id for t in (await registry.spawn(spawn_of(2), caller=ME)).tasks)
            raise InvalidInput("from the body")

    with pytest.raises(InvalidInput, match="from the body"):
        await body()
    registry = seen[0]
    assert [s.state for s in registry.snapshots(ids)] == [TaskState.INTERRUPTED] * 2


async def test_running_out_of_time_while_rate_limited_fails_as_rate_limited(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.restart("rate limited (429); retrying in 1.0 s (attempt 2)", ErrorKind.RATE_LIMITED)
        await anyio.Event().wait()  # still waiting on the provider when the time runs out
        raise AssertionError("unreachable")

    async with open_engine(make_settings(), ScriptedBackend(handler)) as registry:
        request = SpawnRequest(tasks=[TaskRequest(task="x", timeout_s=0.05)])
        task_id = (await registry.spawn(request, caller=ME)).tasks[0].task_id
        with anyio.fail_after(5):
            await registry.wait([task_id])
        snap = registry.snapshot(task_id, caller=ME)
    assert snap.error is not None and snap.error.kind is ErrorKind.RATE_LIMITED
    assert "kept rate-limiting" in snap.error.message and "siblings kept their results" in snap.error.message


async def test_each_retry_is_told_to_listeners_and_logged_as_it_happens(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[RetryNotice] = []
    first_retry_heard, go_on = anyio.Event(), anyio.Event()

    def listener(notice: RetryNotice) -> None:
        heard.append(notice)
        first_retry_heard.set()

    def broken_listener(notice: RetryNotice) -> None:
        raise RuntimeError("a listener's bug")

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.restart("HTTP 503; retrying in 1.5 s (attempt 2)", ErrorKind.API_ERROR)
        await go_on.wait()  # the retry is told before the wait, not after it
        sink.restart("rate limited (429); retrying in 4.0 s (attempt 3)", ErrorKind.RATE_LIMITED)
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    caplog.set_level(logging.INFO, logger="fanout_mcp.server.core.registry")
    async with running(ScriptedBackend(handler), make_settings()) as registry:
        registry.on_retry(broken_listener)
        registry.on_retry(listener)
        receipt = await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="x", label="flaky")]), caller=ME)
        task_id = receipt.tasks[0].task_id
        with anyio.fail_after(5):
            await first_retry_heard.wait()
            assert [n.attempt for n in heard] == [2]
            go_on.set()
            await registry.wait([task_id])
        snap = registry.snapshot(task_id, caller=ME)
    assert snap.state is TaskState.COMPLETED  # the broken listener failed nothing
    assert [(n.task_id, n.group_id, n.label, n.attempt, n.cause) for n in heard] == [
        (task_id, receipt.group_id, "flaky", 2, ErrorKind.API_ERROR),
        (task_id, receipt.group_id, "flaky", 3, ErrorKind.RATE_LIMITED),
    ]
    assert heard[0].note == "HTTP 503; retrying in 1.5 s (attempt 2)"
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in retries] == [
        (logging.WARNING, f"task {task_id} (flaky) retrying [api_error]: HTTP 503; retrying in 1.5 s (attempt 2)"),
        (logging.INFO, f"task {task_id} (flaky) retrying [rate_limited]: rate limited (429); retrying in 4.0 s "
         "(attempt 3)"),
    ]  # fmt: skip
    assert any(r.getMessage() == "a retry listener failed" for r in caplog.records)


async def test_a_change_during_on_change_is_not_lost(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    first_gate, second_gate = anyio.Event(), anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        await (first_gate if "part 0" in request.prompt else second_gate).wait()
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    async def on_change(ended: list[str]) -> None:
        second_gate.set()  # the other task ends while this callback is still running
        await anyio.wait_all_tasks_blocked()

    async with running(ScriptedBackend(handler), make_settings()) as registry:
        ids = [t.task_id for t in (await registry.spawn(spawn_of(2), caller=ME)).tasks]
        first_gate.set()
        with anyio.fail_after(5):  # without the fix this waits until the timeout
            await registry.wait(ids, on_change)
        assert registry.counts(ids).completed == 2


async def test_cancelling_a_list_that_evicts_a_later_entry_reports_it(make_settings: MakeSettings) -> None:
    backend = ScriptedBackend(gated(anyio.Event()))
    async with running(backend, make_settings(max_finished=1, max_concurrency=1)) as registry:
        done_id = (
            (await registry.spawn(SpawnRequest(tasks=[TaskRequest(task="a", timeout_s=0.01)]), caller=ME))
            .tasks[0]
            .task_id
        )
        with anyio.fail_after(5):
            await registry.wait([done_id])
        blocker, queued = (t.task_id for t in (await registry.spawn(spawn_of(2), caller=ME)).tasks)
        with anyio.fail_after(5):
            await backend.wait_calls(2)
        outcome = registry.cancel([queued, done_id], caller=ME)
        assert outcome.cancelled == [queued]
        assert [s.task_id for s in outcome.already_finished] == [done_id]
        registry.cancel([blocker], caller=ME)


async def test_siblings_start_anyway_when_the_lead_never_answers(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.core.runner as runner_module

    monkeypatch.setattr(runner_module, "WARM_WAIT_S", 0.05)
    release = anyio.Event()

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        await release.wait()  # nobody answers: the lead never calls response_started
        return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")

    backend = ScriptedBackend(handler, caches_prompts=True)
    async with running(backend, make_settings(cache_min_tokens=10)) as registry:
        ids = [
            t.task_id for t in (await registry.spawn(spawn_of(3, shared_context="x " * 100), caller=ME)).tasks
        ]
        with anyio.fail_after(5):
            await backend.wait_calls(3)
        release.set()
        with anyio.fail_after(5):
            await registry.wait(ids)


class Puppet:
    """A backend whose task ``part i`` does what the test says, one step at a time: report a call's
    usage, then wait for the next step; ``"end"`` completes the task, ``"fail"`` fails it."""

    def __init__(self, n: int) -> None:
        streams = [anyio.create_memory_object_stream[tuple[Any, anyio.Event]](1) for _ in range(n)]
        self.senders = [send for send, _ in streams]
        self.receivers = [receive for _, receive in streams]

    async def handler(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        index = int(request.prompt.split("part ", 1)[1].split()[0])
        async for step, applied in self.receivers[index]:
            if step == "end":
                return SubagentResult(text="ok", model=request.model, stop_reason="end_turn")
            if step == "fail":
                raise TaskFailure(ErrorKind.API_ERROR, "it broke")
            sink.add_usage(*step)
            applied.set()
        raise AssertionError("the test stopped driving this task")

    def close(self) -> None:
        for stream in [*self.senders, *self.receivers]:
            stream.close()

    async def step(self, index: int, step: Any) -> None:
        applied = anyio.Event()
        await self.senders[index].send((step, applied))
        if step not in ("end", "fail"):
            with anyio.fail_after(5):
                await applied.wait()


async def test_a_groups_totals_are_the_sum_of_its_tasks_usage_at_every_step(
    make_settings: MakeSettings,
) -> None:
    # Step by step as each call is told: on Temporal a front end sees usage at the heartbeats' pace.
    from server import Tokens, Usage

    puppet = Puppet(4)
    backend = ScriptedBackend(puppet.handler)
    seen: dict[str, Usage] = {}  # each task's usage as last seen, kept after the task is evicted
    spent = 0.0
    async with open_registry(make_settings(max_finished=2), backend) as registry:
        receipt = await registry.spawn(spawn_of(4), caller=ME)
        ids = [t.task_id for t in receipt.tasks]
        with anyio.fail_after(5):
            await backend.wait_calls(4)

        async def check() -> None:
            seen.update({snap.task_id: snap.usage for snap in registry.snapshots(ids)})
            summary = registry.group_summary(receipt.group_id)
            assert summary.usage == sum(seen.values(), Usage())
            assert (summary.tasks, summary.spent_usd) == (4, spent)
            assert (await registry.list(receipt.group_id, limit=0, caller=ME)).counts == registry.counts(ids)

        async def end(index: int, how: str) -> None:
            await puppet.step(index, how)
            with anyio.fail_after(5):
                await registry.wait([ids[index]])

        await check()
        await puppet.step(0, ("claude-sonnet-5-5", Tokens(input_tokens=100), 0.5))
        spent += 0.5
        await check()
        await puppet.step(1, ("claude-sonnet-5-5", Tokens(output_tokens=10, cache_read_tokens=7), 0.25))
        spent += 0.25
        await check()
        await end(0, "end")
        await check()
        await puppet.step(2, ("claude-sonnet-5-5", Tokens()))  # ran, and nobody said what it cost
        await check()
        assert registry.group_summary(receipt.group_id).usage.cost_usd is None
        await puppet.step(1, ("my-own-model", Tokens(cache_write_tokens=5), 0.125))
        spent += 0.125
        await end(1, "fail")
        await check()
        await end(2, "end")  # three finished, two kept: the first is evicted
        with pytest.raises(UnknownTask):
            registry.snapshot(ids[0], caller=ME)
        await check()
        await puppet.step(3, ("claude-sonnet-5-5", Tokens(input_tokens=1), 0.0625))
        spent += 0.0625
        registry.cancel([ids[3]], caller=ME)
        with anyio.fail_after(5):
            await registry.wait([ids[3]])
        await check()
        total = registry.group_summary(receipt.group_id).usage
        assert (total.input_tokens, total.output_tokens, total.cache_read_tokens) == (101, 10, 7)
        assert total.cache_write_tokens == 5 and total.cost_usd is None
    puppet.close()


async def test_a_listing_reads_only_the_tasks_it_shows(make_settings: MakeSettings) -> None:
    reads: list[str] = []

    class Watched(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            reads.append(key)
            return super().__getitem__(key)

        def get(self, key: str, default: Any = None) -> Any:
            reads.append(key)
            return super().get(key, default)

    store = MemoryStore()
    settings = make_settings(max_tasks_per_spawn=200)
    async with open_registry(settings, ScriptedBackend(), store=store) as registry:
        first = await registry.spawn(spawn_of(200), caller=ME)
        mine = await registry.spawn(spawn_of(100), caller=ME)
        with anyio.fail_after(5):
            await registry.wait([t.task_id for t in [*first.tasks, *mine.tasks]])
        store._tasks = Watched(store._tasks)  # pyright: ignore[reportPrivateUsage]
        listing = await registry.list(limit=3, caller=ME)
        assert [s.task_id for s in listing.tasks] == [t.task_id for t in mine.tasks[-3:]]
        assert (listing.total, listing.counts.completed) == (300, 300)
        assert len(reads) == 3
        reads.clear()
        listing = await registry.list(first.group_id, TaskState.COMPLETED, limit=2, caller=ME)
        assert [s.task_id for s in listing.tasks] == [t.task_id for t in first.tasks[-2:]]
        assert (listing.total, listing.counts.completed, listing.counts.queued) == (200, 200, 0)
        assert len(reads) == 2
