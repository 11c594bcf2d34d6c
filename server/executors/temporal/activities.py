"""The activity: one task's subagent call, on a worker, with the worker's backends and settings.

It runs the call as the embedded runner does (``core/attempt.py``) and heartbeats every
``BEAT_EVERY_S`` what the task has said so far (``codec.beat``). A cancel from the workflow arrives at a
heartbeat as cancellation: the task ends cancelled with what it has. A worker that shuts down lets its
activities go instead (they are retried on another worker), and one retried after its worker died
starts from the dead attempt's last heartbeat: its usage and tries go on counting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace

import anyio
from temporalio import activity
from temporalio.converter import value_to_type
from temporalio.service import RPCError

from ...backends.roster import Roster
from ...config.pricing import PriceTable
from ...core.attempt import Ended, attempt
from ...core.models import RetryNotice, TaskError
from ...core.progress import Progress
from ...core.records import Spend
from ...core.state import ErrorKind, TaskState
from ...intake.subagent_prompt import with_dependencies
from . import codec, wire

logger = logging.getLogger(__name__)

BEAT_EVERY_S = 0.5
KEEPALIVE_S = 2.0  #: the longest between two heartbeats of a task whose progress did not change


class SubagentActivities:
    """The worker's activity, over its backends and prices."""

    def __init__(self, roster: Roster, prices: PriceTable) -> None:
        self._roster = roster
        self._prices = prices

    @activity.defn(name=wire.ACTIVITY)
    async def run_subagent(self, call: wire.SubagentCall) -> wire.TaskEnd:
        spec, request = codec.spec_of(call.spec_json), codec.request_of(call.request_json)
        if call.answers:
            answers = [(task_id, label, answer) for task_id, label, answer in call.answers]
            request = replace(
                request, prompt=with_dependencies(request.prompt, answers, call.dependency_chars)
            )
        earlier = _earlier_attempt()
        spend = codec.spend_of(earlier.spend)
        opens = anyio.Event() if call.warms else None
        progress = Progress(
            call.task_id,
            call.group_id,
            call.label,
            prices=self._prices,
            record_usage=lambda _task_id, tokens, cost: spend.add(tokens, cost),
            on_retry=_log_retry,
            opens=opens,
        )
        try:
            backend = self._roster.get(spec.backend)
        except KeyError:
            message = f"backend {spec.backend!r} is not configured on the worker that took the task"
            error = TaskError(kind=ErrorKind.BACKEND_UNAVAILABLE, message=message)
            return codec.task_end(Ended(TaskState.FAILED, error=error), progress, spend, earlier.attempts)
        try:
            ended = await _beating(
                attempt(backend, request, progress, spec), call, progress, spend, earlier.attempts, opens
            )
        except asyncio.CancelledError:
            if activity.is_worker_shutdown():
                raise  # not the task's end: another worker runs it again
            ended = Ended(TaskState.CANCELLED)
        finally:
            progress.close()
        return codec.task_end(ended, progress, spend, earlier.attempts)


def _earlier_attempt() -> wire.Beat:
    """What an earlier attempt of this activity (on a worker that died) last heartbeat; its tries
    counted as done (the attempts of a beat count the one running then)."""
    details = activity.info().heartbeat_details  # decoded as JSON values: no type was given
    if not details:
        return wire.Beat(attempts=0)
    return value_to_type(wire.Beat, details[-1])


async def _beating(
    answer: Awaitable[Ended],
    call: wire.SubagentCall,
    progress: Progress,
    spend: Spend,
    earlier_attempts: int,
    opens: anyio.Event | None,
) -> Ended:
    """``answer``'s end, heartbeating while it runs (and telling the workflow when a lead's answer
    begins)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(_beat, progress, spend, earlier_attempts, call.beat_chars)
        if opens is not None:
            tg.start_soon(_tell_opened, opens, call.group_id, call.task_id)
        try:
            return await answer
        finally:
            tg.cancel_scope.cancel()
    raise AssertionError("unreachable: the task group raises or the call returned")


async def _beat(progress: Progress, spend: Spend, earlier_attempts: int, chars: int) -> None:
    """Heartbeat what changed every ``BEAT_EVERY_S``, and the same again every ``KEEPALIVE_S``: a
    heartbeat is a write to the cluster, and a thousand tasks waiting for their first byte need not
    each write one a second (the keep-alive also bounds how late a cancel arrives, at a heartbeat)."""
    last, sent_at = None, 0.0
    while True:
        beat = codec.beat(progress, spend, earlier_attempts, chars)
        if beat != last or anyio.current_time() - sent_at >= KEEPALIVE_S:
            activity.heartbeat(beat)
            last, sent_at = beat, anyio.current_time()
        await anyio.sleep(BEAT_EVERY_S)


async def _tell_opened(opens: anyio.Event, group_id: str, task_id: str) -> None:
    """Once the answer begins, tell the workflow, whose siblings of this task may start: the provider
    has the shared prompt prefix in its cache. A signal that fails costs only the wait (the workflow
    starts them after ``WARM_WAIT_S`` anyway)."""
    await opens.wait()
    try:
        await activity.client().get_workflow_handle(group_id).signal(wire.OPENED, task_id)
    except RPCError as exc:
        logger.warning("task %s could not tell its workflow its answer began: %s", task_id, exc)


def _log_retry(notice: RetryNotice) -> None:
    logger.info("task %s (%s) tries again: %s", notice.task_id, notice.label, notice.note)
