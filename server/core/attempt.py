"""One task's call of its backend, from its written request to how the task ends: what the embedded
runner does for each task, and what a distributed executor's worker does for each task it is given.

The call runs within the task's timeout, with one repair call for an answer that breaks its output
schema. Every way it can end is an ``Ended``: completed with its answer, or failed with the error
(``failures.py``). Only cancellation escapes, as it must.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import anyio

from ..backends import Backend
from ..intake.answer_schemas import check_answer_in_worker, repair_request
from .errors import TaskFailure
from .failures import InvalidOutput, crashed, timed_out
from .models import SubagentRequest, SubagentResult, TaskError, TaskSpec
from .progress import Progress
from .state import TaskState

logger = logging.getLogger(__name__)

MAX_TOKENS_NOTE = "the answer hit max_tokens and is cut short; raise max_tokens to get all of it"


@dataclass(frozen=True, slots=True)
class Ended:
    """How a task's call ended: the state it moves to and the fields of its end (``TaskTable.move``)."""

    state: TaskState
    output: str | None = None
    structured: Any = None
    stop_reason: str | None = None
    model: str | None = None
    error: TaskError | None = None
    note: str | None = None


async def attempt(backend: Backend, request: SubagentRequest, progress: Progress, spec: TaskSpec) -> Ended:
    """Call ``backend`` for the task within its timeout; how the task ends (see the module)."""
    try:
        with anyio.fail_after(spec.timeout_s):
            result, structured = await _answer(backend, request, progress, spec)
    except TimeoutError:
        return Ended(TaskState.FAILED, error=timed_out(spec, progress))
    except InvalidOutput as invalid:
        return Ended(TaskState.FAILED, output=invalid.text, error=invalid.error)
    except TaskFailure as failure:
        return Ended(TaskState.FAILED, error=TaskError(kind=failure.kind, message=failure.message))
    except Exception as exc:  # a backend bug must not take down the siblings or the server
        logger.exception("task %s crashed", progress.task_id)
        return Ended(TaskState.FAILED, error=crashed(exc))
    note = MAX_TOKENS_NOTE if result.stop_reason == "max_tokens" else None
    return Ended(
        TaskState.COMPLETED,
        output=result.text,
        structured=structured,
        stop_reason=result.stop_reason,
        model=result.model,
        note=note,
    )


async def _answer(
    backend: Backend, request: SubagentRequest, progress: Progress, spec: TaskSpec
) -> tuple[SubagentResult, Any]:
    """Run the backend; an answer that breaks the task's output schema gets one repair call."""
    result = await backend.run(request, progress)
    schema, known = spec.output_schema, spec.known_sources
    if schema is None:
        return result, None
    value, problem = await check_answer_in_worker(result.text, schema, known)
    if problem is None:
        return result, value
    progress.begin_repair(
        result.text, f"the answer did not fit its output schema; asking once more ({problem})"
    )
    # An empty assistant turn is refused by the API: say that there was none.
    follow_up = (result.text.strip() or "(no answer)", repair_request(problem, schema))
    repaired = await backend.run(replace(request, follow_up=follow_up), progress)
    value, problem = await check_answer_in_worker(repaired.text, schema, known)
    if problem is not None:
        raise InvalidOutput(repaired.text, problem)
    return repaired, value
