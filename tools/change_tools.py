"""The MCP tools of change sets: an edit task's patch, apply (and undo) into the user's tree, discard.

A thin layer like ``handlers.py``: each tool selects tasks through the registry, checks that they have
ended, makes one call on the runtime's ``Workshop`` and returns its answer as it is.
"""

from typing import Annotated, Any

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from ..server import FanoutError
from ..server.changes.models import ApplyOutcome, UndoOutcome
from .callers import caller_of
from .engine import runtime_of
from .result_models import _omitted_if_none  # pyright: ignore[reportPrivateUsage]
from .results import Refusal, call_again, result

TaskIds = Annotated[
    list[str] | None, Field(description="Edit task ids, in the order to apply (or give group_id).")
]
GroupId = Annotated[
    str | None, Field(description="All edit tasks of this spawn_parallel group, in spawn order.")
]


class PatchPage(BaseModel):
    task_id: str
    patch: str
    total_chars: int
    truncated: bool = Field(description="More follows: call again with offset=next_offset.")
    next_offset: int | None = _omitted_if_none()


class ApplyResult(BaseModel):
    applied: Annotated[ApplyOutcome | None, Field(description="What this apply did (or would do).")] = (
        _omitted_if_none()
    )
    undo: Annotated[UndoOutcome | None, Field(description="What undo did.")] = _omitted_if_none()


class DiscardResult(BaseModel):
    discarded: Annotated[list[str], Field(description="Tasks whose worktrees and change sets are gone.")]


async def task_patch(
    ctx: Context,
    task_id: str,
    offset: Annotated[int, Field(ge=0, description="Skip this many characters of the patch.")] = 0,
    max_chars: Annotated[int, Field(ge=1, le=200_000, description="Characters at most.")] = 20_000,
) -> Annotated[types.CallToolResult, PatchPage]:
    """An edit task's changes as a unified diff against the snapshot of your tree it started from, paged:
    while truncated is true, call again with offset=next_offset (task_output lists the files)."""
    runtime = await runtime_of(ctx)
    try:
        await runtime.registry.select([task_id], None, caller=caller_of(ctx, runtime.settings.operators))
        patch = await runtime.changes.patch(task_id)
    except FanoutError as exc:
        raise Refusal("invalid_input", str(exc), call_again("task_patch")) from None
    end = offset + max_chars
    page = PatchPage(task_id=task_id, patch=patch[offset:end], total_chars=len(patch),
                     truncated=end < len(patch), next_offset=end if end < len(patch) else None)  # fmt: skip
    return result(page, page.patch or "(no changes)")


async def apply_changes(
    ctx: Context,
    group_id: GroupId = None,
    task_ids: TaskIds = None,
    dry_run: Annotated[bool, Field(description="True: only say what would apply and what not.")] = True,
    undo: Annotated[str | None, Field(description="An apply_id: reverse that apply instead.")] = None,
) -> Annotated[types.CallToolResult, ApplyResult]:
    """Apply finished edit tasks' changes into the user's working tree, in order (never HEAD, the index
    or branches). Each is checked against the tree as it is then; one that conflicts is skipped with its
    paths and the rest still apply. dry_run is the default: look first, then call with dry_run=false.
    undo=<apply_id> reverses an apply while its files are unchanged since, else returns the reverse
    patch.
    """
    runtime = await runtime_of(ctx)
    try:
        if undo is not None:
            outcome = ApplyResult(undo=await runtime.changes.undo(undo))
            return result(outcome, outcome.model_dump_json(indent=1, exclude_none=True))
        ids = await runtime.registry.select(
            task_ids, group_id, caller=caller_of(ctx, runtime.settings.operators)
        )
        unfinished = [s.task_id for s in runtime.registry.snapshots(ids) if not s.state.terminal]
        if unfinished:
            wait = "task_output with the same ids waits for them; then apply_changes again."
            raise Refusal("invalid_input", f"tasks not finished yet: {', '.join(unfinished)}", wait)
        if group_id is not None:  # a group's tasks that are not edit tasks are left out, not refused
            ids = list(await runtime.changes.records(ids))
        applied = ApplyResult(applied=await runtime.changes.apply(ids, dry_run))
    except FanoutError as exc:
        raise Refusal("invalid_input", str(exc), call_again("apply_changes")) from None
    return result(applied, applied.model_dump_json(indent=1, exclude_none=True))


async def discard_changes(
    ctx: Context, group_id: GroupId = None, task_ids: TaskIds = None
) -> Annotated[types.CallToolResult, DiscardResult]:
    """Throw edit tasks' changes away: their worktrees are removed (git worktree remove) and their refs
    deleted. What was applied stays in the tree."""
    runtime = await runtime_of(ctx)
    try:
        ids = await runtime.registry.select(
            task_ids, group_id, caller=caller_of(ctx, runtime.settings.operators)
        )
        gone = DiscardResult(discarded=await runtime.changes.discard(ids))
    except FanoutError as exc:
        raise Refusal("invalid_input", str(exc), call_again("discard_changes")) from None
    return result(gone, f"discarded: {', '.join(gone.discarded) or 'nothing'}")


def register_change_tools(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(task_patch, title="An edit task's patch",
                 annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False))  # fmt: skip
    mcp.add_tool(
        apply_changes,
        title="Apply edit tasks' changes",
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
    )
    mcp.add_tool(
        discard_changes,
        title="Discard edit tasks' changes",
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
    )
