"""The MCP tools: a thin layer over the engine. Each docstring is the tool's description for the model.

Engine errors become ``ToolError`` (an ``isError`` result whose text the model reads and can act on).
Waiting is bounded here, at the edge, with ``move_on_after``; nothing below takes a timeout.
"""

import logging
import math
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from fanout_mcp.server import (
    BackendUnavailable,
    Counts,
    ErrorKind,
    FanoutError,
    SpawnRequest,
    TaskRegistry,
    TaskRequest,
    TaskState,
    Usage,
    fair_shares,
)
from fanout_mcp.tools import shape
from fanout_mcp.tools.engine import runtime_of
from fanout_mcp.tools.sampling import NAME, SamplingBackend
from fanout_mcp.tools.schemas import (
    CancelResult,
    FinishedTask,
    GroupView,
    ListResult,
    SpawnedTaskView,
    SpawnResult,
    SynthesisResult,
    TaskOutputResult,
)

if TYPE_CHECKING:
    from fanout_mcp.server import Runtime

logger = logging.getLogger(__name__)

# How long cancel_tasks waits for running tasks to wind down before it answers.
_CANCEL_GRACE_S = 5.0

WaitSeconds = Annotated[
    float | None,
    Field(
        ge=0,
        description="Seconds to wait for unfinished tasks before answering (default 25). Capped by the "
        "server (default 50) so the call returns before the client's tool-call timeout.",
    ),
]
TaskIds = Annotated[
    list[str] | None,
    Field(description="Task ids from spawn_parallel. Give task_ids or group_id, not both."),
]
GroupId = Annotated[str | None, Field(description="A group_id from spawn_parallel: all of its tasks.")]


@contextmanager
def _as_tool_errors() -> Generator[None, None, None]:
    try:
        yield
    except (
        BackendUnavailable
    ) as exc:  # the kind first, as a task's error carries it, for a caller to branch on
        raise ToolError(f"{ErrorKind.BACKEND_UNAVAILABLE.value}: {exc}") from None
    except FanoutError as exc:
        raise ToolError(str(exc)) from None


def _result(model: BaseModel, text: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
    )


def _groups(registry: TaskRegistry, task_ids: Sequence[str]) -> list[GroupView]:
    views: list[GroupView] = []
    for group_id in registry.groups_of(task_ids):
        summary = registry.group_summary(group_id)
        views.append(GroupView(group_id=group_id, tasks=summary.tasks, usage=summary.usage,
                               budget_usd=summary.budget_usd, spent_usd=summary.spent_usd))  # fmt: skip
    return views


def _wait_budget(runtime: "Runtime", wait_s: float | None) -> float:
    settings = runtime.settings
    if wait_s is None:
        return min(settings.default_wait_s, settings.max_wait_s)
    if math.isnan(wait_s) or wait_s < 0:
        raise ToolError(f"wait_s must be a number of seconds >= 0 (got {wait_s})")
    return min(wait_s, settings.max_wait_s)


async def _wait(runtime: "Runtime", task_ids: Sequence[str], seconds: float, ctx: Context) -> float:
    """Wait up to ``seconds`` for the tasks, reporting progress; return the seconds waited."""
    if seconds <= 0:  # a look, not a wait: no task group, no heartbeat
        return 0.0
    registry = runtime.registry
    total = len(task_ids)
    started = anyio.current_time()
    last = -1.0

    async def report() -> None:
        nonlocal last
        counts = registry.counts(task_ids)
        done = shape.finished_count(counts)
        # Progress must rise with every notification (MCP spec), heartbeats included: between task
        # ends it creeps up with the time waited, never reaching the next whole task.
        waited = (anyio.current_time() - started) / seconds if seconds > 0 else 0.0
        value = float(total) if done == total else done + 0.9 * min(waited, 1.0)
        last = value = max(value, last + 1e-6)
        try:
            await ctx.report_progress(
                value, total, f"{done}/{total} finished ({shape.describe_counts(counts)})"
            )
        except Exception:  # a client that went away must not turn a result into an error
            logger.debug("progress notification failed", exc_info=True)

    async def heartbeat() -> None:
        while True:
            await anyio.sleep(runtime.settings.progress_interval_s)
            await report()

    with anyio.move_on_after(seconds):
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            await registry.wait(task_ids, on_change=report)
            tg.cancel_scope.cancel()
    return round(anyio.current_time() - started, 3)


async def spawn_parallel(
    tasks: Annotated[
        list[TaskRequest],
        Field(description="The independent tasks, one subagent each (1 to 100 by default)."),
    ],
    ctx: Context,
    shared_context: Annotated[
        str | None,
        Field(
            description="Context every task needs (project background, conventions, the goal). Sent once, "
            "first and identical for every task, so the provider's prompt cache serves it."
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        Field(
            ge=1, description="Run at most this many of these tasks at once (lower than the server's limit)."
        ),
    ] = None,
    output_schema: Annotated[
        dict[str, Any] | str | None,
        Field(
            description="The answer's shape for every task without its own: 'findings' (built in; "
            "synthesize merges findings without a model) or a JSON Schema of an object."
        ),
    ] = None,
    budget_usd: Annotated[
        float | None,
        Field(
            gt=0,
            description="Stop starting this spawn's tasks once its calls have cost this many dollars; the "
            "tasks not started end cancelled with kind budget_exceeded. Running tasks finish.",
        ),
    ] = None,
    backend: Annotated[
        str | None,
        Field(
            description="Where every task without its own backend runs: 'auto' (default), 'anthropic', "
            "'claude', 'codex', 'batch' (half price, answers within 24 h), or another command the server "
            "offers. Tasks may mix backends."
        ),
    ] = None,
    tools: Annotated[
        list[Literal["read"]],
        Field(
            max_length=1,
            description="['read']: every task without its own tools, on a backend that runs them "
            "('anthropic'), may list, read and search the server's allowed roots itself (read-only). "
            "Tasks on other backends run without them (a warning says which).",
        ),
    ] = [],  # noqa: B006  (pydantic copies defaults; the list is never mutated)
    wait_s: Annotated[
        float,
        Field(ge=0, description="Seconds to wait before returning (default 0: return at once)."),
    ] = 0,
) -> Annotated[types.CallToolResult, SpawnResult]:
    """Start several independent subagent tasks in parallel, in the background, and return their ids at once.

    Use it when a job splits into parts that do not depend on each other: different files, modules or
    directories, or different review perspectives (security, performance, testing, architecture) on the
    same code. Check first that no task needs another's output, that tasks touch different files or
    concerns, and that order does not matter; otherwise run them one after another instead.

    Each task is a subagent prompt: task (required), role, context, files (read by the server and put in
    the prompt), output_format and focus_areas. Put what every task needs in shared_context (sent once,
    cached). Give all tasks the same output_format so their answers merge cleanly, or an output_schema
    ('findings' for reviews) so each answer comes back parsed and synthesize can merge them exactly.
    A task that needs another's result can name it in depends_on; it starts when that one completes,
    and everything else still runs in parallel. A task runs on the Anthropic API or on an agent CLI the
    server runs for it ('claude', 'codex': backend); an unknown or unusable backend is refused with the
    names this server offers.

    Returns group_id and task_ids immediately; the tasks run in the background (queued beyond the
    server's concurrency limit). Next: call task_output(group_id=...) to collect the results (it waits
    for them), then synthesize(group_id=...) to merge them into one answer. For 20 tasks or more, wait
    with task_output(group_id=..., include="status") instead (counts and ids, not outputs), then
    synthesize, or read outputs with task_output(task_ids=[...]) a few ids at a time.
    """
    runtime = await runtime_of(ctx)
    with _as_tool_errors():
        receipt = await runtime.registry.spawn(
            SpawnRequest(
                tasks=tasks,
                shared_context=shared_context,
                max_concurrency=max_concurrency,
                output_schema=output_schema,
                budget_usd=budget_usd,
                backend=backend,
                tools=tools,
            ),
            extra_backends={NAME: SamplingBackend.of(ctx)},
        )
    ids = [t.task_id for t in receipt.tasks]
    if wait_s:
        await _wait(runtime, ids, _wait_budget(runtime, wait_s), ctx)
    snaps = runtime.registry.snapshots(ids)
    result = SpawnResult(
        group_id=receipt.group_id,
        task_ids=ids,
        tasks=[SpawnedTaskView(task_id=s.task_id, label=s.label, state=s.state) for s in snaps],
        warnings=receipt.warnings,
    )
    return _result(result, shape.render_spawn(result, waited=bool(wait_s)))


async def task_output(
    ctx: Context,
    task_ids: TaskIds = None,
    group_id: GroupId = None,
    wait_s: WaitSeconds = None,
    offset: Annotated[int, Field(ge=0, description="Skip this many characters of each output (paging).")] = 0,
    max_chars: Annotated[
        int, Field(ge=1, le=1_000_000, description="Characters of each task's output to return.")
    ] = 20_000,
    include: Annotated[
        Literal["output", "status"],
        Field(
            description="'output' (default): each task with its output, errors and usage. 'status': only "
            "done, counts, totals and the task ids by state, a few bytes per task: use it to wait on a "
            f"group of {shape.BIG_GROUP} or more tasks, then read outputs by task_ids."
        ),
    ] = "output",
) -> Annotated[types.CallToolResult, TaskOutputResult]:
    """Collect spawned tasks' results by id: state, output (partial while running), errors and usage.

    Waits until every named task has finished or wait_s passes (default 25 s, never more than the
    server's cap of 50 s, so the call returns before a client's tool-call timeout), then returns.
    If done is false, call task_output again with the same arguments to keep waiting. Outputs are
    paged: each task returns at most max_chars, and all together at most the server's budget (40,000
    characters by default), shared fairly. When a task's truncated is true, call again with
    task_ids=[that id] and offset=next_offset. When all are done, call synthesize to merge the answers.

    For a big group (20 tasks or more), wait with include="status": it returns done, counts, totals
    and the ids by state instead of the tasks, a few bytes per task however many there are. Once done,
    merge with synthesize, or read outputs with task_ids, a few ids per call.
    """
    runtime = await runtime_of(ctx)
    with _as_tool_errors():
        ids = runtime.registry.select(task_ids, group_id)
    waited = await _wait(runtime, ids, _wait_budget(runtime, wait_s), ctx)
    registry = runtime.registry
    if include == "status":
        result = _status(registry, ids, waited)
        return _result(result, shape.render_status(result))
    snaps = registry.snapshots(ids)  # one read of the tasks: counts and usage come from it too
    counts = Counts.of([s.state for s in snaps])
    # Every task gets up to max_chars, and all of them together at most the server's budget, shared
    # fairly: a result a client would cut or save to a file helps nobody. The rest is paged.
    wanted = [min(max(0, len(s.output or "") - offset), max_chars) for s in snaps]
    shares = fair_shares(wanted, runtime.settings.max_output_chars)
    result = TaskOutputResult(
        done=shape.finished_count(counts) == len(ids),
        counts=counts,
        tasks=[shape.task_view(snap, offset, share) for snap, share in zip(snaps, shares, strict=True)],
        usage=sum((s.usage for s in snaps), Usage()),
        groups=_groups(registry, ids),
        waited_s=waited,
    )
    return _result(result, shape.render_output(result, max_chars))


def _status(registry: TaskRegistry, ids: Sequence[str], waited: float) -> TaskOutputResult:
    """task_output's include="status": ids by state and totals, no snapshot of any task."""
    by_state = registry.ids_by_state(ids)
    counts = Counts.of_tally({state: len(state_ids) for state, state_ids in by_state.items()})
    return TaskOutputResult(
        done=shape.finished_count(counts) == len(ids),
        counts=counts,
        ids_by_state=shape.ids_by_state(by_state),
        usage=registry.usage(ids),
        groups=_groups(registry, ids),
        waited_s=waited,
    )


async def synthesize(
    ctx: Context,
    group_id: GroupId = None,
    task_ids: TaskIds = None,
    instructions: Annotated[
        str | None,
        Field(
            description="What the merged answer should focus on or look like, e.g. 'rank by exploitability'."
        ),
    ] = None,
    mode: Annotated[
        Literal["auto", "llm", "merge"],
        Field(
            description="'llm': one model call merges the answers; 'merge': deterministic, no model; "
            "'auto' (default): llm when the server has an API key, else merge."
        ),
    ] = "auto",
    quorum: Annotated[
        Literal["any", "majority", "all"] | int,
        Field(
            description="For merge mode with findings: keep only findings reported by at least this many "
            "tasks ('majority': more than half of those that answered with findings). Default 'any'."
        ),
    ] = "any",
    wait_s: WaitSeconds = None,
) -> Annotated[types.CallToolResult, SynthesisResult]:
    """Merge the answers of finished tasks into one: related findings merged, conflicts between
    recommendations resolved, priorities set by severity, and an actionable summary, each point citing
    the task ids it came from.

    Waits up to wait_s (default 25 s, capped at 50 s) for unfinished tasks. A model synthesis starts
    only once every task has ended (so it is paid for once); until then done is false: call
    synthesize again with the same arguments, cancel_tasks what you no longer need, or use
    mode='merge' to merge what has finished now. Tasks that failed or were cancelled (and, in a merge,
    those still running) are listed under missing with the reason, never dropped silently. The model
    synthesis runs as a task of its own; if it has not finished within wait_s, done is false and the
    next identical call picks up the same synthesis.
    """
    runtime = await runtime_of(ctx)
    registry = runtime.registry
    with _as_tool_errors():
        ids = registry.select(task_ids, group_id)
    budget = _wait_budget(runtime, wait_s)
    deadline = anyio.current_time() + budget
    await _wait(runtime, ids, budget, ctx)
    synth = runtime.synthesizer
    use_llm = mode == "llm" or (mode == "auto" and registry.backends.default_usable())
    if isinstance(quorum, int) and quorum < 1:
        raise ToolError(f"quorum must be 'any', 'majority', 'all' or a number of tasks >= 1 (got {quorum})")
    groups = _groups(registry, ids)
    if not use_llm:
        result = shape.synthesis_result(await synth.merge(ids, quorum), registry.usage(ids), None, groups)
        return _result(result, shape.render_synthesis(result))
    counts = registry.counts(ids)
    if unfinished := counts.queued + counts.running:
        result = shape.pending_synthesis(None, registry.usage(ids), unfinished, len(ids), groups)
        return _result(result, shape.render_synthesis(result))
    with _as_tool_errors():
        synthesis_id = await synth.start_llm(ids, instructions)
    await _wait(runtime, [synthesis_id], max(0.0, deadline - anyio.current_time()), ctx)
    with _as_tool_errors():
        done = await synth.result(synthesis_id, ids, quorum)
    total = registry.usage([*ids, *synth.synthesis_tasks(synthesis_id)])
    if done is None:
        result = shape.pending_synthesis(synthesis_id, total, 0, len(ids), groups)
    else:
        result = shape.synthesis_result(done, total, synthesis_id, groups)
    return _result(result, shape.render_synthesis(result))


async def list_tasks(
    ctx: Context,
    group_id: Annotated[str | None, Field(description="Only the tasks of this group.")] = None,
    state: Annotated[TaskState | None, Field(description="Only tasks in this state.")] = None,
    limit: Annotated[int, Field(ge=1, le=10_000, description="Show at most this many (the newest).")] = 100,
) -> Annotated[types.CallToolResult, ListResult]:
    """List tasks (newest spawns last, at most limit of them) with their state, label, errors and usage,
    but not their outputs.

    Use it to find ids again, or to see what is still running. Read outputs with task_output. For the
    states of every task of a big group, task_output(group_id=..., include="status") is smaller: ids
    by state, a few bytes per task.
    """
    registry = (await runtime_of(ctx)).registry
    with _as_tool_errors():
        listing = registry.list(group_id, state, limit)
    result = ListResult(
        counts=listing.counts, total=listing.total, tasks=[shape.task_summary(s) for s in listing.tasks]
    )
    return _result(result, shape.render_list(result))


async def cancel_tasks(
    ctx: Context,
    task_ids: TaskIds = None,
    group_id: GroupId = None,
) -> Annotated[types.CallToolResult, CancelResult]:
    """Cancel queued or running tasks (by task_ids, or every task of a group_id).

    Tasks that already finished are left as they are and listed under already_finished. Outputs of
    finished tasks stay available to task_output and synthesize.
    """
    registry = (await runtime_of(ctx)).registry
    with _as_tool_errors():
        ids = registry.select(task_ids, group_id)
    outcome = registry.cancel(ids)
    with anyio.move_on_after(_CANCEL_GRACE_S):
        await registry.wait(outcome.cancelled)
    result = CancelResult(
        cancelled=outcome.cancelled,
        already_finished=[FinishedTask(task_id=s.task_id, state=s.state) for s in outcome.already_finished],
        counts=registry.counts(ids),
    )
    return _result(result, shape.render_cancel(result))


def register(mcp: MCPServer[Any]) -> None:
    """Add the five tools to ``mcp``."""
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
