"""task_output's answers: every task's page of output, all of them together within what a client shows
whole, shared fairly (the rest is paged); or, for a big group, its ids by state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import mcp_types as types

from ..server import Counts, TaskSnapshot, TaskState, Usage, fair_shares
from ..server.changes.models import ChangeSet
from .next_calls import output_next
from .rendering import ids_by_state, render_output, task_view
from .result_models import GroupView, TaskOutputResult, TaskView
from .results import LARGE_RESULT_CHARS, largest_page, result

# task_output's page per task when none is asked for; a larger one may pass what a client shows whole.
DEFAULT_MAX_CHARS: Final = 20_000


def output_result(
    snaps: Sequence[TaskSnapshot],
    groups: list[GroupView],
    waited: float,
    selector: str,
    *,
    offset: int,
    max_chars: int,
    max_output_chars: int,
    full: bool,
    changes: Mapping[str, ChangeSet] | None = None,
    patch: bool = False,
) -> types.CallToolResult:
    """The tasks (``snaps``), each with a page of its output from ``offset``: at most ``max_chars``, and
    all together within ``max_output_chars`` as sent unless a page larger than the default is asked for.
    ``full``: the text repeats every output (a client that reads only the text); ``patch``: the outputs
    are edit tasks' patches."""
    counts, usage = Counts.of([s.state for s in snaps]), sum((s.usage for s in snaps), Usage())
    wanted = [min(max(0, len(s.output or "") - offset), max_chars) for s in snaps]
    # Every task gets up to max_chars, and all of them together what keeps the result (as sent) within
    # what a client shows whole, shared fairly: a result a client would cut or save to a file helps
    # nobody. The rest is paged. A page larger than the default, asked for, may be larger.
    size_limit = max(max_output_chars, LARGE_RESULT_CHARS) if max_chars > DEFAULT_MAX_CHARS else None
    limit = size_limit or max_output_chars

    def build(budget: int) -> types.CallToolResult:
        shares = fair_shares(wanted, budget)
        pages = zip(snaps, shares, strict=True)
        views = [
            _with_changes(task_view(snap, offset, share, text_too=full), changes) for snap, share in pages
        ]
        answer = TaskOutputResult(
            done=counts.ended == len(snaps),
            counts=counts,
            tasks=views,
            usage=usage,
            groups=groups,
            waited_s=waited,
            next=output_next(counts, views, status=False, selector=selector, patch=patch),
        )
        return result(answer, render_output(answer, max_chars, full), size_limit)

    return largest_page(build, sum(wanted), limit, copies=2 if full else 1)


def _with_changes(view: TaskView, changes: Mapping[str, ChangeSet] | None) -> TaskView:
    """An edit task's view with its changes next to its answer."""
    found = changes.get(view.task_id) if changes else None
    return view if found is None else view.model_copy(update={"changes": found})


def status_result(
    named: int,
    by_state: Mapping[TaskState, Sequence[str]],
    usage: Usage,
    groups: list[GroupView],
    waited: float,
    selector: str,
) -> TaskOutputResult:
    """task_output's include="status": the ids of the ``named`` tasks that are still known, by state, and
    totals; no snapshot of any task."""
    counts = Counts.of_tally({state: len(state_ids) for state, state_ids in by_state.items()})
    return TaskOutputResult(
        done=counts.ended == named,
        counts=counts,
        ids_by_state=ids_by_state(by_state),
        usage=usage,
        groups=groups,
        waited_s=waited,
        next=output_next(counts, [], status=True, selector=selector),
    )
