"""The workflow of one spawn: its tasks in dependency order, each an activity, within the spawn's
``max_concurrency`` and budget; cancellable task by task (the ``cancel`` signal); readable at any time
(the ``view`` query). Its code runs in Temporal's workflow sandbox: deterministic, time from
``workflow.now``, nothing imported but what is passed through.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ...core.failures import dependency_failed_message, over_budget_message
    from ...core.runner import WARM_WAIT_S
    from ...core.state import ErrorKind, TaskState
    from .wire import (
        ACTIVITY,
        AWAIT_ACTIVITY,
        OPENED,
        WORKFLOW,
        CancelRequest,
        GroupSpawn,
        GroupView,
        SubagentCall,
        TaskCall,
        TaskEnd,
        TaskView,
        ViewAsk,
        beat_chars,
    )

#: how long a worker may go without a heartbeat (it beats every ``activities.BEAT_EVERY_S``) before its
#: activity is given to another worker
HEARTBEAT_TIMEOUT_S = 10.0
#: tries of an activity on workers: more only when a worker died or shut down while it ran (a task's own
#: failures are its end, not an activity failure)
WORKER_ATTEMPTS = 5
#: what the activity may take beyond the task's own timeout, which it keeps itself
_GRACE = timedelta(seconds=60)
#: the most activities one workflow step asks for. A step's commands reach the cluster in one call,
#: and while a worker takes its next step the cluster buffers what happens meanwhile (100 events by
#: default, then it fails the step and the worker replays the whole history). A 2,000-task spawn asked
#: for every activity in its first step, and its steps were failed again and again; in waves of 200,
#: the bench's 2,000 tasks on the dev server took 41 s instead of 75, its CPU 11 ms a task, not 35.
STARTS_PER_STEP = 200
_PACED = "paced-starts"  #: the patch: a history written before it replays unpaced
_NEXT_STEP = timedelta(milliseconds=1)
_BUDGET_NOTE = "not started: the spawn's budget was spent"
#: the longest a retried task waits for a task outside its retry (that task's own timeout ends it sooner)
_AWAIT_LIMIT = timedelta(days=1)


@workflow.defn(name=WORKFLOW)
class FanoutGroup:
    """One spawn (see the module)."""

    @workflow.init
    def __init__(self, spawn: GroupSpawn) -> None:
        self._spawn = spawn
        self._calls = {call.task_id: call for call in spawn.tasks}
        self._views = {call.task_id: TaskView(call.task_id, TaskState.QUEUED.value) for call in spawn.tasks}
        self._end_order: list[str] = []  #: the tasks that have ended, in the order they did
        self._cancel_notes: dict[str, str] = {}
        #: what the ended tasks cost: kept as they end (summed at each start, a spawn's starts were O(N²))
        self._spent = 0.0
        self._opened: set[str] = set()  #: cache-warming leads whose answer has begun
        self._running: dict[str, workflow.ActivityHandle[TaskEnd]] = {}
        self._waiting: dict[str, workflow.ActivityHandle[TaskEnd]] = {}  #: awaiting a task outside
        self._awaited: dict[str, list[list[str]]] = {}  #: answers of tasks outside, once they ended
        self._step = self._step_starts = 0  #: the workflow step (its history's length) and its starts
        self._pacing = False  #: a timer is on its way to bring the next step
        self._slots = asyncio.Semaphore(min(spawn.max_concurrency or spawn.max_pending, spawn.max_pending))

    @workflow.run
    async def run(self, spawn: GroupSpawn) -> GroupView:
        await asyncio.gather(*(self._run_task(call) for call in spawn.tasks))
        return self.view(ViewAsk(with_specs=True))  # whole: a front end that never saw the group reads it

    @workflow.query
    def view(self, ask: ViewAsk) -> GroupView:
        fresh = set(self._end_order[ask.ended_seen :])
        tasks = [view for view in self._views.values() if view.end is None or view.task_id in fresh]
        if ask.with_specs:
            tasks = [self._with_spec(view) for view in tasks]
        spawn = self._spawn
        return GroupView(spawn.group_id, spawn.owner, spawn.budget_usd, tasks, len(self._end_order))

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        for task_id in request.task_ids:
            view = self._views.get(task_id)
            if view is None or view.end is not None or task_id in self._cancel_notes:
                continue
            self._cancel_notes[task_id] = request.reason
            handle = self._running.get(task_id)
            if handle is not None:
                handle.cancel()  # the activity ends the task cancelled, with what it has
            elif view.state == TaskState.QUEUED.value:
                self._end(task_id, TaskEnd(TaskState.CANCELLED.value, note=request.reason))
                if (waiting := self._waiting.get(task_id)) is not None:
                    waiting.cancel()

    @workflow.signal(name=OPENED)
    def opened(self, task_id: str) -> None:
        self._opened.add(task_id)

    # --- one task -----------------------------------------------------------------------------------------

    async def _run_task(self, call: TaskCall) -> None:
        task_id = call.task_id
        # Its turn comes when every dependency completed, or as soon as one ended without an answer.
        await workflow.wait_condition(
            lambda: (
                self._ended(task_id)
                or all(self._ended(dep) for dep in call.depends_on)
                or any(self._ended(dep) and not self._completed(dep) for dep in call.depends_on)
            )
        )
        if self._ended(task_id) or self._failed_dependency(call):
            return
        if call.outside_waits and not await self._outside_answered(call):
            return
        if call.warm_lead is not None:
            await self._warmed(task_id, call.warm_lead)
        async with self._slots:
            await self._admitted()
            if self._ended(task_id) or self._budget_stop(task_id):
                return
            view = self._views[task_id]
            view.state, view.started_at = TaskState.RUNNING.value, workflow.now().timestamp()
            self._end(task_id, await self._call(call))

    async def _admitted(self) -> None:
        """Wait for this task's turn to ask for its activity: at most ``STARTS_PER_STEP`` a workflow
        step. The rest wait for a next step, which one short timer brings for all of them."""
        while True:
            step = workflow.info().get_current_history_length()
            if step != self._step:
                self._step, self._step_starts = step, 0
            if self._step_starts < STARTS_PER_STEP or not workflow.patched(_PACED):
                self._step_starts += 1
                return
            if self._pacing:
                await _step_after(step)
                continue
            self._pacing = True
            await workflow.sleep(_NEXT_STEP)
            self._pacing = False

    async def _outside_answered(self, call: TaskCall) -> bool:
        """Wait for the unfinished tasks outside the spawn that ``call`` depends on (a retry's), each
        through the ``AWAIT_ACTIVITY`` on a worker; False if the task ended meanwhile (cancelled, or one
        of them ended without an answer)."""
        task_id = call.task_id
        for dep, label in call.outside_waits:
            handle = workflow.start_activity(
                AWAIT_ACTIVITY,
                dep,
                result_type=TaskEnd,
                activity_id=f"{task_id} awaits {dep}",
                start_to_close_timeout=_AWAIT_LIMIT,
                heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S),
                retry_policy=RetryPolicy(maximum_attempts=WORKER_ATTEMPTS),
            )
            self._waiting[task_id] = handle
            try:
                end = await handle
            except ActivityError:
                return False  # cancelled with the task (its end is said), or no worker could read it
            finally:
                del self._waiting[task_id]
            if self._ended(task_id):
                return False
            if end.state != TaskState.COMPLETED.value:
                why = end.error_message or end.note or end.state
                message = dependency_failed_message(label, dep, end.state, why)
                kind = ErrorKind.DEPENDENCY_FAILED.value
                self._end(task_id, TaskEnd(TaskState.FAILED.value, error_kind=kind, error_message=message))
                return False
            self._awaited.setdefault(task_id, []).append([dep, label, end.output or ""])
        return True

    async def _warmed(self, task_id: str, lead: str) -> None:
        """Wait (as the embedded runner does, ``WARM_WAIT_S`` at most) until ``lead``'s answer has begun,
        so that this task reads the prompt prefix from the provider's cache instead of writing it too."""
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: lead in self._opened or self._ended(lead) or self._ended(task_id),
                timeout=timedelta(seconds=WARM_WAIT_S),
            )

    async def _call(self, call: TaskCall) -> TaskEnd:
        answers = [*call.outside_answers, *self._awaited.get(call.task_id, [])]
        for dep in call.depends_on:
            end = self._views[dep].end
            answers.append([dep, self._calls[dep].label, (end.output if end else None) or ""])
        spawn = self._spawn
        handle = workflow.start_activity(
            ACTIVITY,
            SubagentCall(
                call.task_id,
                spawn.group_id,
                call.label,
                call.spec_json,
                call.request_json,
                answers,
                spawn.dependency_chars,
                call.warms,
                beat_chars(len(spawn.tasks)),
            ),
            result_type=TaskEnd,
            activity_id=call.task_id,
            start_to_close_timeout=timedelta(seconds=call.timeout_s) + _GRACE,
            heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S),
            retry_policy=RetryPolicy(maximum_attempts=WORKER_ATTEMPTS),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        self._running[call.task_id] = handle
        try:
            end = await handle
        except ActivityError as err:
            note = self._cancel_notes.get(call.task_id)
            if note is not None:
                return TaskEnd(TaskState.CANCELLED.value, note=note)
            message = f"internal error in fanout-mcp: no worker could run the task ({err.cause or err})"
            return TaskEnd(TaskState.FAILED.value, error_kind=ErrorKind.INTERNAL.value, error_message=message)
        finally:
            del self._running[call.task_id]
        if end.state == TaskState.CANCELLED.value:
            end.note = self._cancel_notes.get(call.task_id, end.note)
        return end

    def _failed_dependency(self, call: TaskCall) -> bool:
        """Fail the task if a task it depends on ended without an answer (True)."""
        for dep in call.depends_on:
            view = self._views[dep]
            end = view.end
            if end is None or view.state == TaskState.COMPLETED.value:
                continue
            why = end.error_message or end.note or view.state
            message = dependency_failed_message(self._calls[dep].label, dep, view.state, why)
            kind = ErrorKind.DEPENDENCY_FAILED.value
            self._end(call.task_id, TaskEnd(TaskState.FAILED.value, error_kind=kind, error_message=message))
            return True
        return False

    def _budget_stop(self, task_id: str) -> bool:
        """End the task unstarted if the spawn's budget is spent (True)."""
        budget = self._spawn.budget_usd
        if budget is None or self._spent < budget:
            return False
        kind, message = ErrorKind.BUDGET_EXCEEDED.value, over_budget_message(budget, self._spent)
        end = TaskEnd(TaskState.CANCELLED.value, note=_BUDGET_NOTE, error_kind=kind, error_message=message)
        self._end(task_id, end)
        return True

    def _ended(self, task_id: str) -> bool:
        return self._views[task_id].end is not None

    def _completed(self, task_id: str) -> bool:
        return self._views[task_id].state == TaskState.COMPLETED.value

    def _end(self, task_id: str, end: TaskEnd) -> None:
        view = self._views[task_id]
        view.state, view.end, view.ended_at = end.state, end, workflow.now().timestamp()
        self._end_order.append(task_id)
        self._spent += end.spend.cost_usd or 0.0

    def _with_spec(self, view: TaskView) -> TaskView:
        call = self._calls[view.task_id]
        return TaskView(
            view.task_id,
            view.state,
            view.started_at,
            view.ended_at,
            view.end,
            call.spec_json,
            list(call.depends_on),
        )


async def _step_after(step: int) -> None:
    """Return in the first workflow step after ``step`` (a history length)."""
    await workflow.wait_condition(lambda: workflow.info().get_current_history_length() != step)
