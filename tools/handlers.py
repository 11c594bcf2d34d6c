"""The MCP tools: a thin layer over the engine. Each docstring is the tool's description for the model
(``$name`` in it, or in an argument's description, is this server's value: see ``tool_facts``).

Every result's structured content is the answer a model reads, with ``next``: what to call next and why
(``results.py``). Engine errors become ``Refusal``s, which the server answers as error results with the
message and what to do. Waiting is bounded here, at the edge (``waiting.py``); nothing below takes a
timeout. A tool body translates its arguments, makes one engine call and renders the answer
(``rendering.py``, ``output_pages.py``, ``next_calls.py``).
"""

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from ..server import (
    Settings,
    SpawnRequest,
    TaskRegistry,
    TaskState,
)
from ..server.intake.answer_schemas import BUILTIN_SCHEMAS
from ..server.intake.requests import (
    BudgetUsd,
    MaxConcurrency,
    SharedContext,
    SpawnBackend,
    SpawnEdit,
    SpawnOutputSchema,
    SpawnTools,
    Tasks,
)
from . import rendering
from .callers import caller_of
from .change_tools import register_change_tools, with_patches
from .engine import dashboard_links, runtime_of
from .lean import ServerFacts
from .next_calls import BIG_GROUP, cancel_next, list_next
from .output_pages import DEFAULT_MAX_CHARS, output_result, status_result
from .result_models import (
    CancelResult,
    FinishedTask,
    GroupView,
    ListResult,
    RetryResult,
    SpawnResult,
    SynthesisResult,
    TaskOutputResult,
)
from .results import (
    LARGE_RESULT_CHARS,
    RESULT_SIZE_META,
    as_tool_errors,
    reads_text_only,
    result,
)
from .sampling import NAME, SamplingBackend
from .waiting import wait_budget, wait_for, waiting

# How long cancel_tasks waits for running tasks to wind down before it answers.
_CANCEL_GRACE_S = 5.0

WaitSeconds = Annotated[
    float | None,
    Field(
        ge=0,
        description="Seconds to wait for unfinished tasks (default $default_wait_s, at most $max_wait_s).",
    ),
]
TaskIds = Annotated[list[str] | None, Field(description="Task ids (or give group_id).")]
GroupId = Annotated[str | None, Field(description="All tasks of this spawn_parallel group.")]
Instructions = Annotated[str | None, Field(description="What the merged answer should focus on.")]
SynthesisMode = Annotated[
    Literal["auto", "llm", "merge"],
    Field(
        description="'llm': a model merges; 'merge': by rule, no model; 'auto': 'llm' if the server's "
        "default backend can run, else 'merge'."
    ),
]
QuorumArg = Annotated[
    Literal["any", "majority", "all"] | int,
    Field(
        description="'merge' of findings: keep those at least this many tasks reported ('majority': "
        "over half of those with findings)."
    ),
]


def tool_facts(settings: Settings, backends: Sequence[str]) -> ServerFacts:
    """What this server's tool list says that only its settings know: the values its descriptions name,
    the ``backend`` names it offers and how many tasks one spawn may hold."""
    values = {
        "default_wait_s": f"{min(settings.default_wait_s, settings.max_wait_s):g}",
        "max_wait_s": f"{settings.max_wait_s:g}",
        "max_output_chars": str(settings.max_output_chars),
        "big_group": str(BIG_GROUP),
    }
    return ServerFacts(
        values=values,
        enums={"backend": list(backends), "output_schema": list(BUILTIN_SCHEMAS)},
        max_items={"tasks": settings.max_tasks_per_spawn},
    )


async def _read_again(registry: TaskRegistry, ids: Sequence[str]) -> None:
    """What other processes' tasks said while ``task_output`` waited. A store that cannot answer now
    (Temporal too busy to answer a group's query) is a ``backend_unavailable`` refusal: the caller asks
    again, as when the read before the wait fails."""
    with as_tool_errors("task_output"):
        await registry.refresh(ids)


def _groups(registry: TaskRegistry, task_ids: Sequence[str]) -> list[GroupView]:
    views: list[GroupView] = []
    for group_id in registry.groups_of(task_ids):
        summary = registry.group_summary(group_id)
        views.append(GroupView(group_id=group_id, tasks=summary.tasks, usage=summary.usage,
                               budget_usd=summary.budget_usd, spent_usd=summary.spent_usd))  # fmt: skip
    return views


def _selector(task_ids: Sequence[str] | None, group_id: str | None) -> str:
    """How a call named its tasks, for the next call to name them the same way."""
    return f'group_id="{group_id}"' if group_id is not None else "task_ids=[the same ids]"


async def spawn_parallel(
    tasks: Tasks,
    ctx: Context,
    shared_context: SharedContext = None,
    max_concurrency: Annotated[MaxConcurrency, Field(ge=1)] = None,
    output_schema: SpawnOutputSchema = None,
    budget_usd: Annotated[BudgetUsd, Field(gt=0)] = None,
    backend: SpawnBackend = None,
    tools: Annotated[SpawnTools, Field(max_length=1)] = [],  # noqa: B006  (pydantic copies defaults)
    edit: SpawnEdit = False,
    wait_s: Annotated[float, Field(ge=0, description="Seconds to wait before returning.")] = 0,
) -> Annotated[types.CallToolResult, SpawnResult]:
    """Start independent subagent tasks in parallel, in the background; returns group_id and task_ids at once.

    Use it when a job splits into parts that do not depend on each other: files, modules, or review
    perspectives. Each task must be complete on its own (a subagent sees no conversation). Give all
    tasks the same output_format, or output_schema 'findings' for reviews, so the answers merge; a task
    that needs another's answer names it in depends_on.

    Next: task_output(group_id) collects the results, then synthesize(group_id) merges them; for
    $big_group tasks or more, wait with task_output(group_id, include="status").
    """
    runtime = await runtime_of(ctx)
    request = SpawnRequest(
        tasks=tasks,
        shared_context=shared_context,
        max_concurrency=max_concurrency,
        output_schema=output_schema,
        budget_usd=budget_usd,
        backend=backend,
        tools=tools,
        edit=edit,
    )
    with as_tool_errors("spawn_parallel"):
        receipt = await runtime.registry.spawn(
            request,
            extra_backends={NAME: SamplingBackend.of(ctx)},
            caller=caller_of(ctx, runtime.settings.operators),
        )
    ids = [t.task_id for t in receipt.tasks]
    if wait_s:
        await wait_for(runtime, ids, wait_budget("spawn_parallel", runtime.settings, wait_s), ctx)
    answer = rendering.spawn_result(receipt, runtime.registry.snapshots(ids), waited=bool(wait_s))
    return result(answer, rendering.render_spawn(answer))


async def task_output(
    ctx: Context,
    task_ids: TaskIds = None,
    group_id: GroupId = None,
    wait_s: WaitSeconds = None,
    offset: Annotated[int, Field(ge=0, description="Skip this many characters of each output.")] = 0,
    max_chars: Annotated[
        int, Field(ge=1, le=1_000_000, description="Characters of each output at most.")
    ] = DEFAULT_MAX_CHARS,
    include: Annotated[
        Literal["output", "status", "patch"],
        Field(
            description="'status': counts and ids by state only, to wait on a big group; 'patch': edit "
            "tasks' diffs as their output."
        ),
    ] = "output",
) -> Annotated[types.CallToolResult, TaskOutputResult]:
    """Collect tasks' results: state, output (partial while running; structured instead, parsed, for a
    task with an output_schema), errors and usage.

    Waits until every named task has finished or wait_s passes; while done is false, call again with
    the same arguments. Each task gives at most max_chars, and one result holds at most
    $max_output_chars characters, shared fairly; where truncated is true, call again with
    task_ids=[that id] and offset=next_offset. include="status" gives counts and ids by state instead
    of the tasks: wait on a group of $big_group tasks or more that way.
    """
    runtime = await runtime_of(ctx)
    registry = runtime.registry
    with as_tool_errors("task_output"):
        ids = await registry.select(task_ids, group_id, caller=caller_of(ctx, runtime.settings.operators))
    waited = await wait_for(runtime, ids, wait_budget("task_output", runtime.settings, wait_s), ctx)
    await _read_again(registry, ids)
    selector = _selector(task_ids, group_id)
    full = reads_text_only(ctx)
    if include == "status":
        by_state, usage = registry.ids_by_state(ids), registry.usage(ids)
        status = status_result(len(ids), by_state, usage, _groups(registry, ids), waited, selector)
        return _linked(ctx, registry.groups_of(ids), result(status, rendering.render_status(status, full)))
    snaps = registry.snapshots(ids)  # one read of the tasks: counts and usage come from it too
    patch = include == "patch"
    changes = None if patch else await runtime.changes.changes(ids)
    if patch:
        with as_tool_errors("task_output"):
            snaps = await with_patches(runtime, snaps, whole_group=group_id is not None)
    return _linked(ctx, registry.groups_of(ids), output_result(
        snaps, _groups(registry, ids), waited, selector,
        offset=offset, max_chars=max_chars, max_output_chars=runtime.settings.max_output_chars, full=full,
        changes=changes, patch=patch,
    ))  # fmt: skip


def _linked(ctx: Context, group_ids: list[str], answer: types.CallToolResult) -> types.CallToolResult:
    """``answer`` with the groups' dashboard pages (of the first three), for the person reading along."""
    if links := dashboard_links(ctx, group_ids[:3]):
        answer.content.append(types.TextContent(type="text", text=f"Dashboard: {' '.join(links)}"))
    return answer


async def synthesize(
    ctx: Context,
    group_id: GroupId = None,
    task_ids: TaskIds = None,
    instructions: Instructions = None,
    mode: SynthesisMode = "auto",
    quorum: QuorumArg = "any",
    wait_s: WaitSeconds = None,
) -> Annotated[types.CallToolResult, SynthesisResult]:
    """Merge finished tasks' answers into one: duplicates once, conflicts with every side, actions by
    priority, each citing its task ids; tasks without an answer are listed under missing.

    Waits up to wait_s. A model synthesis starts once every task has ended (so it is paid for once);
    until it is ready, done is false: call again with the same arguments (it is picked up, not
    restarted), or use mode 'merge' to merge what has finished now.
    """
    runtime = await runtime_of(ctx)
    caller = caller_of(ctx, runtime.settings.operators)
    with as_tool_errors("synthesize"):
        ids = await runtime.registry.select(task_ids, group_id, caller=caller)
        wait = waiting(runtime, wait_budget("synthesize", runtime.settings, wait_s), ctx)
        answer = await runtime.synthesizer.synthesize(ids, mode, quorum, instructions, wait, caller=caller)
    groups = _groups(runtime.registry, ids)
    full = reads_text_only(ctx)
    reply, text = rendering.synthesis_reply(answer, groups, _selector(task_ids, group_id), full)
    with as_tool_errors("synthesize"):
        overview = await runtime.changes.overview(ids)  # edit tasks: conflicts found by git, no model
    return result(reply.model_copy(update={"changes": overview}), text)


async def list_tasks(
    ctx: Context,
    group_id: Annotated[str | None, Field(description="Only the tasks of this group.")] = None,
    state: Annotated[TaskState | None, Field(description="Only tasks in this state.")] = None,
    limit: Annotated[int, Field(ge=1, le=10_000, description="Show at most this many (the newest).")] = 100,
) -> Annotated[types.CallToolResult, ListResult]:
    """List tasks (newest last) with state, label, errors and usage, not outputs: to find ids or see
    what runs. For a big group, task_output(group_id, include="status") is smaller."""
    runtime = await runtime_of(ctx)
    with as_tool_errors("list_tasks"):
        listing = await runtime.registry.list(
            group_id, state, limit, caller=caller_of(ctx, runtime.settings.operators)
        )
    disk = await runtime.changes.disk.groups(s.group_id for s in listing.tasks)
    answer = ListResult(
        counts=listing.counts,
        total=listing.total,
        tasks=[rendering.task_summary(s) for s in listing.tasks],
        worktree_bytes=disk or None,
        next=list_next(listing.counts),
    )
    return result(answer, rendering.render_list(answer))


async def cancel_tasks(
    ctx: Context,
    task_ids: TaskIds = None,
    group_id: GroupId = None,
) -> Annotated[types.CallToolResult, CancelResult]:
    """Cancel queued or running tasks. Finished ones are left as they are (under already_finished), and
    their outputs stay readable."""
    runtime = await runtime_of(ctx)
    registry, caller = runtime.registry, caller_of(ctx, runtime.settings.operators)
    with as_tool_errors("cancel_tasks"):
        ids = await registry.select(task_ids, group_id, caller=caller)
        outcome = registry.cancel(ids, caller=caller)
    with anyio.move_on_after(_CANCEL_GRACE_S):
        await registry.wait(outcome.cancelled)
    counts = registry.counts(ids)
    answer = CancelResult(
        cancelled=outcome.cancelled,
        already_finished=[FinishedTask(task_id=s.task_id, state=s.state) for s in outcome.already_finished],
        counts=counts,
        next=cancel_next(counts),
    )
    return result(answer, rendering.render_cancel(answer))


async def retry_tasks(
    ctx: Context,
    task_ids: TaskIds = None,
    group_id: GroupId = None,
) -> Annotated[types.CallToolResult, RetryResult]:
    """Run tasks that ended interrupted, failed or cancelled again, in a new group: each under a new id,
    with retry_of its old one. Completed and unfinished ones are skipped.

    Use it when tasks show interrupted (their server stopped) or failed for a passing reason. Each
    runs as first asked (files read again), with its spawn's settings and a fresh budget_usd.

    Next: task_output(group_id) with the new group_id.
    """
    runtime = await runtime_of(ctx)
    registry, caller = runtime.registry, caller_of(ctx, runtime.settings.operators)
    with as_tool_errors("retry_tasks"):
        ids = await registry.select(task_ids, group_id, caller=caller)
        receipt = await registry.retry(ids, extra_backends={NAME: SamplingBackend.of(ctx)}, caller=caller)
    answer = rendering.retry_result(receipt)
    return result(answer, rendering.render_retry(answer))


def register(mcp: MCPServer[Any], settings: Settings) -> None:
    """Add the six tools to ``mcp``, then those of change sets (``change_tools``)."""
    mcp.add_tool(
        spawn_parallel,
        title="Spawn parallel subagents",
        annotations=types.ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        ),
    )
    mcp.add_tool(
        task_output,
        title="Collect subagent results",
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
        # Claude Code reads this from the tool list, not from a result: the most one result may hold
        # before it is saved to a file. Results stay within max_output_chars unless a page larger than
        # the default is asked for.
        meta={RESULT_SIZE_META: max(settings.max_output_chars, LARGE_RESULT_CHARS)},
    )
    mcp.add_tool(
        synthesize,
        title="Synthesize subagent results",
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
    )
    mcp.add_tool(
        list_tasks,
        title="List subagent tasks",
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    mcp.add_tool(
        cancel_tasks,
        title="Cancel subagent tasks",
        annotations=types.ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    mcp.add_tool(
        retry_tasks,
        title="Retry subagent tasks",
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True),
    )
    register_change_tools(mcp)
