"""The MCP side of change sets: the apply_changes tool (apply, undo, discard) and task_output's patches.

A thin layer like ``handlers.py``: the tasks are selected through the registry with the caller (another
principal's ids answer as unknown ones), checked to have ended, and handed to the runtime's ``Workshop``
in one call, whose answer goes back as it is with the next call to make. One tool rather than three:
every tool costs every client's model the tokens of its description on every turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from ..server import Caller, TaskSnapshot
from ..server.changes.models import ApplyOutcome, Resolution, UndoOutcome
from ..server.changes.resolution import merge_with_markers, plan_resolution
from .callers import caller_of
from .engine import runtime_of
from .next_calls import apply_next, discard_next, resolve_next, undo_next
from .result_models import Next
from .result_models import _omitted_if_none as omitted_if_none  # pyright: ignore[reportPrivateUsage]
from .results import Refusal, as_tool_errors, result

if TYPE_CHECKING:
    from ..server import Runtime

TaskIds = Annotated[list[str] | None, Field(description="Edit task ids, in the order to apply.")]
GroupId = Annotated[str | None, Field(description="All edit tasks of this group, in spawn order.")]


class ApplyResult(BaseModel):
    """Returned by apply_changes: what the apply, undo or discard did."""

    applied: Annotated[ApplyOutcome | None, Field(description="What this apply did (or would do).")] = (
        omitted_if_none()
    )
    undo: UndoOutcome | None = omitted_if_none()
    discarded: Annotated[
        list[str] | None, Field(description="Tasks whose worktrees and change sets are gone.")
    ] = omitted_if_none()
    resolving: Resolution | None = omitted_if_none()
    next: Next


async def apply_changes(
    ctx: Context,
    group_id: GroupId = None,
    task_ids: TaskIds = None,
    dry_run: Annotated[bool, Field(description="Only say what would apply.")] = True,
    undo: Annotated[str | None, Field(description="An apply_id: reverse that apply instead.")] = None,
    discard: Annotated[bool, Field(description="Delete their changes instead (worktrees, refs).")] = False,
    resolve: Annotated[
        list[str] | None, Field(description="Conflicting edit task ids: start one that merges them.")
    ] = None,
) -> Annotated[types.CallToolResult, ApplyResult]:
    """Apply finished edit tasks' changes to the user's working tree, in order (never HEAD, the index or
    branches): one that conflicts with the tree as it is then is skipped with its paths, the rest
    apply. Look with the default dry_run first."""
    runtime = await runtime_of(ctx)
    caller = caller_of(ctx, runtime.settings.operators)
    with as_tool_errors("apply_changes"):
        if resolve is not None:
            started = await _resolve(runtime, resolve, caller)
            answer = ApplyResult(resolving=started, next=resolve_next(started))
        elif undo is not None:
            outcome = await runtime.changes.undo(undo, caller=caller)
            answer = ApplyResult(undo=outcome, next=undo_next(outcome))
        else:
            ids = await runtime.registry.select(task_ids, group_id, caller=caller)
            selector = f'group_id="{group_id}"' if group_id is not None else "task_ids=[...]"
            if discard:
                gone = await runtime.changes.discard(ids)
                answer = ApplyResult(discarded=gone, next=discard_next(gone))
            else:
                applied = await _apply(runtime, ids, group_id is not None, dry_run, caller)
                answer = ApplyResult(applied=applied, next=apply_next(applied, selector))
    return result(answer, f"{answer.model_dump_json(indent=1, exclude={'next'})}\n\nNext: {answer.next}")


async def _apply(
    runtime: Runtime, ids: list[str], whole_group: bool, dry_run: bool, caller: Caller
) -> ApplyOutcome:
    _check_finished(runtime, ids)
    if whole_group:  # a group's tasks that are not edit tasks are left out, not refused
        ids = list(await runtime.changes.records(ids))
    return await runtime.changes.apply(ids, dry_run, caller=caller)


async def _resolve(runtime: Runtime, task_ids: list[str], caller: Caller) -> Resolution:
    """Start the edit task that resolves the conflicts between ``task_ids``' change sets, on the first
    one's backend and model, as a group of its own."""
    ids = list(dict.fromkeys(await runtime.registry.select(task_ids, None, caller=caller)))
    _check_finished(runtime, ids)
    records = await runtime.changes.ready(ids)
    start, conflicts = await merge_with_markers(records)
    answers = runtime.registry.snapshots(ids)
    backend = runtime.backends.get(answers[0].backend)
    planned = plan_resolution(
        records, answers, start, conflicts, backend, runtime.settings, runtime.changes.ledger
    )
    [task_id] = await runtime.registry.spawn_planned([planned], None, caller=caller)
    group_id = runtime.registry.snapshots([task_id])[0].group_id
    return Resolution(task_id=task_id, group_id=group_id, conflicts=conflicts)


def _check_finished(runtime: Runtime, ids: list[str]) -> None:
    unfinished = [s.task_id for s in runtime.registry.snapshots(ids) if not s.state.terminal]
    if unfinished:
        wait = "task_output with the same ids waits for them; then apply_changes again."
        raise Refusal("invalid_input", f"tasks not finished yet: {', '.join(unfinished)}", wait)


async def with_patches(
    runtime: Runtime, snaps: Sequence[TaskSnapshot], whole_group: bool
) -> list[TaskSnapshot]:
    """task_output's include="patch": each edit task with its patch (a unified diff against the snapshot
    it started from) in place of its output, paged the same way; a group's other tasks left out."""
    records = await runtime.changes.records([s.task_id for s in snaps])
    plain = [s.task_id for s in snaps if s.task_id not in records]
    if plain and not whole_group:
        said = f"not edit tasks, so no patch: {', '.join(plain)}"
        raise Refusal("invalid_input", said, 'task_output with include="output" reads their answers.')
    return [
        snap.model_copy(update={"output": await runtime.changes.patch(snap.task_id), "structured": None})
        for snap in snaps
        if snap.task_id in records
    ]


def register_change_tools(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        apply_changes,
        title="Apply edit tasks' changes",
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
    )
