"""What a task that did not complete is told: one error per way of ending, each saying what happened
and what the caller can do about it. The registry decides when a task fails; this module says how."""

from __future__ import annotations

from .models import TaskError, TaskSpec
from .progress import Progress
from .records import GroupRecord, TaskRecord
from .state import ErrorKind


class InvalidOutput(Exception):
    """The answer broke its output schema twice; the task fails and keeps the last raw answer."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(problem)
        self.text = text
        self.error = TaskError(
            kind=ErrorKind.INVALID_OUTPUT,
            message=f"the answer did not fit the output schema, even after one repair request: {problem}. "
            "The raw answer is kept in output. Loosen the schema or make the task's instructions clearer.",
        )


def timed_out(spec: TaskSpec, progress: Progress) -> TaskError:
    """The task's timeout ran out: while the provider kept refusing it, or while it worked."""
    limit = f"{spec.timeout_s:g} s (the task's timeout_s)"
    cause, last = progress.retry_cause, progress.note or ""
    if cause is ErrorKind.RATE_LIMITED:
        message = (
            f"the provider kept rate-limiting this task until its {limit} ran out, over {progress.attempts} "
            f"attempts (last: {last}). Its siblings kept their results. Spawn it again later, or with a "
            "lower max_concurrency."
        )
    elif cause is not None:
        message = (
            f"the provider kept failing until the task's {limit} ran out, over {progress.attempts} attempts "
            f"(last: {last}). Spawn it again later; if it keeps failing, check the provider's status."
        )
    else:
        cause = ErrorKind.TIMEOUT
        status = f" Last status: {last}." if last else ""
        message = (
            f"timed out after {limit}.{status} Any partial answer is kept in output. Spawn it again with "
            "a larger timeout_s, or split it into smaller tasks."
        )
    return TaskError(kind=cause, message=message)


def over_budget(group: GroupRecord) -> TaskError:
    """The spawn's budget was spent before the task started."""
    assert group.budget_usd is not None  # only a spawn with a budget can spend it
    return TaskError(
        kind=ErrorKind.BUDGET_EXCEEDED, message=over_budget_message(group.budget_usd, group.spent_usd)
    )


def over_budget_message(budget_usd: float, spent_usd: float) -> str:
    return (
        f"not started: the spawn's budget_usd of ${budget_usd:g} was reached "
        f"(${spent_usd:.4f} spent). Spawn it again with a budget, if it is still needed."
    )


def dependency_failed(failed: TaskRecord) -> TaskError:
    """A task this one depends on ended without an answer, so this one never started."""
    why = failed.error.message if failed.error else failed.note or failed.state.value
    message = dependency_failed_message(failed.spec.label, failed.id, failed.state.value, why)
    return TaskError(kind=ErrorKind.DEPENDENCY_FAILED, message=message)


def dependency_failed_message(label: str, task_id: str, state: str, why: str) -> str:
    """What ``dependency_failed`` says, from the failed task's label, id, state and why it ended."""
    return (
        f"it depends on {label!r} ({task_id}), which {state} ({why}); it never started. Fix that task, "
        "then spawn both again."
    )


def crashed(exc: Exception) -> TaskError:
    """The engine or a backend raised something it should not have: a bug, contained to this task."""
    return TaskError(
        kind=ErrorKind.INTERNAL,
        message=f"internal error in fanout-mcp ({type(exc).__name__}: {exc}); this is a bug. "
        "The other tasks are not affected.",
    )
