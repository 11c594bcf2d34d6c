"""The MCP tools: a thin layer over the engine. Each docstring is the tool's description for the model
(``$name`` in it, or in an argument's description, is this server's value: see ``tool_facts``).

Every result's structured content is the answer a model reads, with ``next``: what to call next and why
(``results.py``). Engine errors become ``Refusal``s, which the server answers as error results with the
message and what to do. Waiting is bounded here, at the edge, with ``move_on_after``; nothing below
takes a timeout.
"""

import logging
import math
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from ..server import (
    BackendUnavailable,
    Counts,
    ErrorKind,
    FanoutError,
    RegistryClosed,
    Settings,
    SpawnRequest,
    TaskRegistry,
    TaskRequest,
    TaskState,
    UnknownTask,
    Usage,
    fair_shares,
)
from ..server.intake.answer_schemas import BUILTIN_SCHEMAS
from . import rendering
from .engine import runtime_of
from .lean import ServerFacts
from .result_models import (
    CancelResult,
    FinishedTask,
    GroupView,
    ListResult,
    SpawnedTaskView,
    SpawnResult,
    SynthesisResult,
    TaskOutputResult,
)
from .results import (
    LARGE_RESULT_CHARS,
    RESULT_SIZE_META,
    Refusal,
    call_again,
    largest_page,
    reads_text_only,
    result,
)
from .sampling import NAME, SamplingBackend

if TYPE_CHECKING:
    from ..server import Runtime

logger = logging.getLogger(__name__)

# How long cancel_tasks waits for running tasks to wind down before it answers.
_CANCEL_GRACE_S = 5.0
# task_output's page per task when none is asked for; a larger one may pass what a client shows whole.
DEFAULT_MAX_CHARS: Final = 20_000

WaitSeconds = Annotated[
    float | None,
    Field(
        ge=0,
        description="Seconds to wait for unfinished tasks (default $default_wait_s, at most $max_wait_s).",
    ),
]
TaskIds = Annotated[list[str] | None, Field(description="Task ids (or give group_id).")]
GroupId = Annotated[str | None, Field(description="All tasks of this spawn_parallel group.")]


def tool_facts(settings: Settings, backends: Sequence[str]) -> ServerFacts:
    """What this server's tool list says that only its settings know: the values its descriptions name,
    the ``backend`` names it offers and how many tasks one spawn may hold."""
    values = {
        "default_wait_s": f"{min(settings.default_wait_s, settings.max_wait_s):g}",
        "max_wait_s": f"{settings.max_wait_s:g}",
        "max_output_chars": str(settings.max_output_chars),
        "big_group": str(rendering.BIG_GROUP),
    }
    return ServerFacts(
        values=values,
        enums={"backend": list(backends), "output_schema": list(BUILTIN_SCHEMAS)},
        max_items={"tasks": settings.max_tasks_per_spawn},
    )


@contextmanager
def _as_tool_errors(tool: str) -> Generator[None, None, None]:
    try:
        yield
    except UnknownTask as exc:
        raise Refusal("not_found", str(exc), "list_tasks to see the ids this server still knows.") from None
    except (
        BackendUnavailable
    ) as exc:  # the kind first, as a task's error carries it, for a caller to branch on
        raise Refusal(
            "backend_unavailable",
            f"{ErrorKind.BACKEND_UNAVAILABLE.value}: {exc}",
            f"{tool} again naming another backend, or after the server is configured as the message says.",
        ) from None
    except RegistryClosed as exc:
        raise Refusal("shutting_down", str(exc), "Nothing here: the server is stopping.") from None
    except FanoutError as exc:
        raise _invalid(tool, str(exc)) from None


def _invalid(tool: str, message: str) -> Refusal:
    return Refusal("invalid_input", message, call_again(tool))


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


def _wait_budget(tool: str, runtime: "Runtime", wait_s: float | None) -> float:
    settings = runtime.settings
    if wait_s is None:
        return min(settings.default_wait_s, settings.max_wait_s)
    if math.isnan(wait_s) or wait_s < 0:
        raise _invalid(tool, f"wait_s must be a number of seconds >= 0 (got {wait_s})")
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
        done = rendering.finished_count(counts)
        # Progress must rise with every notification (MCP spec), heartbeats included: between task
        # ends it creeps up with the time waited, never reaching the next whole task.
        waited = (anyio.current_time() - started) / seconds if seconds > 0 else 0.0
        value = float(total) if done == total else done + 0.9 * min(waited, 1.0)
        last = value = max(value, last + 1e-6)
        try:
            await ctx.report_progress(
                value, total, f"{done}/{total} finished ({rendering.describe_counts(counts)})"
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
    tasks: Annotated[list[TaskRequest], Field(description="The independent tasks, one subagent each.")],
    ctx: Context,
    shared_context: Annotated[
        str | None,
        Field(description="What every task needs (goal, conventions); sent once, cached."),
    ] = None,
    max_concurrency: Annotated[
        int | None, Field(ge=1, description="Run at most this many of these tasks at once.")
    ] = None,
    output_schema: Annotated[
        dict[str, Any] | str | None,
        Field(description="For tasks without their own (see tasks)."),
    ] = None,
    budget_usd: Annotated[
        float | None,
        Field(gt=0, description="Start no more of these tasks once they cost this many dollars."),
    ] = None,
    backend: Annotated[str | None, Field(description="For tasks without their own (see tasks).")] = None,
    tools: Annotated[
        list[Literal["read"]],
        Field(max_length=1, description="For tasks without their own (see tasks)."),
    ] = [],  # noqa: B006  (pydantic copies defaults; the list is never mutated)
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
    with _as_tool_errors("spawn_parallel"):
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
        await _wait(runtime, ids, _wait_budget("spawn_parallel", runtime, wait_s), ctx)
    views = [
        SpawnedTaskView(task_id=s.task_id, label=s.label, state=s.state)
        for s in runtime.registry.snapshots(ids)
    ]
    answer = SpawnResult(
        group_id=receipt.group_id,
        task_ids=ids,
        tasks=views,
        warnings=receipt.warnings,
        next=rendering.spawn_next(receipt.group_id, views, waited=bool(wait_s)),
    )
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
        Literal["output", "status"],
        Field(description="'status': counts and ids by state only, to wait on a big group."),
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
    with _as_tool_errors("task_output"):
        ids = runtime.registry.select(task_ids, group_id)
    waited = await _wait(runtime, ids, _wait_budget("task_output", runtime, wait_s), ctx)
    registry = runtime.registry
    selector = _selector(task_ids, group_id)
    full = reads_text_only(ctx)
    if include == "status":
        status = _status(registry, ids, waited, selector)
        return result(status, rendering.render_status(status, full))
    snaps = registry.snapshots(ids)  # one read of the tasks: counts and usage come from it too
    counts = Counts.of([s.state for s in snaps])
    usage = sum((s.usage for s in snaps), Usage())
    groups = _groups(registry, ids)
    wanted = [min(max(0, len(s.output or "") - offset), max_chars) for s in snaps]
    # Every task gets up to max_chars, and all of them together what keeps the result (as sent) within
    # what a client shows whole, shared fairly: a result a client would cut or save to a file helps
    # nobody. The rest is paged. A page larger than the default, asked for, may be larger.
    limit = runtime.settings.max_output_chars
    size_limit = None
    if max_chars > DEFAULT_MAX_CHARS:
        limit = size_limit = max(limit, LARGE_RESULT_CHARS)

    def build(budget: int) -> types.CallToolResult:
        shares = fair_shares(wanted, budget)
        pages = zip(snaps, shares, strict=True)
        views = [rendering.task_view(snap, offset, share, text_too=full) for snap, share in pages]
        answer = TaskOutputResult(
            done=rendering.finished_count(counts) == len(ids),
            counts=counts,
            tasks=views,
            usage=usage,
            groups=groups,
            waited_s=waited,
            next=rendering.output_next(counts, views, status=False, selector=selector),
        )
        return result(answer, rendering.render_output(answer, max_chars, full), size_limit)

    return largest_page(build, sum(wanted), limit, copies=2 if full else 1)


def _status(registry: TaskRegistry, ids: Sequence[str], waited: float, selector: str) -> TaskOutputResult:
    """task_output's include="status": ids by state and totals, no snapshot of any task."""
    by_state = registry.ids_by_state(ids)
    counts = Counts.of_tally({state: len(state_ids) for state, state_ids in by_state.items()})
    return TaskOutputResult(
        done=rendering.finished_count(counts) == len(ids),
        counts=counts,
        ids_by_state=rendering.ids_by_state(by_state),
        usage=registry.usage(ids),
        groups=_groups(registry, ids),
        waited_s=waited,
        next=rendering.output_next(counts, [], status=True, selector=selector),
    )


async def synthesize(
    ctx: Context,
    group_id: GroupId = None,
    task_ids: TaskIds = None,
    instructions: Annotated[
        str | None,
        Field(description="What the merged answer should focus on."),
    ] = None,
    mode: Annotated[
        Literal["auto", "llm", "merge"],
        Field(
            description="'llm': a model merges; 'merge': by rule, no model; 'auto': 'llm' if the server's "
            "default backend can run, else 'merge'."
        ),
    ] = "auto",
    quorum: Annotated[
        Literal["any", "majority", "all"] | int,
        Field(
            description="'merge' of findings: keep those at least this many tasks reported ('majority': "
            "over half of those with findings)."
        ),
    ] = "any",
    wait_s: WaitSeconds = None,
) -> Annotated[types.CallToolResult, SynthesisResult]:
    """Merge finished tasks' answers into one: duplicates once, conflicts with every side, actions by
    priority, each citing its task ids; tasks without an answer are listed under missing.

    Waits up to wait_s. A model synthesis starts once every task has ended (so it is paid for once);
    until it is ready, done is false: call again with the same arguments (it is picked up, not
    restarted), or use mode 'merge' to merge what has finished now.
    """
    runtime = await runtime_of(ctx)
    registry = runtime.registry
    with _as_tool_errors("synthesize"):
        ids = registry.select(task_ids, group_id)
    budget = _wait_budget("synthesize", runtime, wait_s)
    deadline = anyio.current_time() + budget
    await _wait(runtime, ids, budget, ctx)
    synth = runtime.synthesizer
    use_llm = mode == "llm" or (mode == "auto" and runtime.backends.default_usable())
    if isinstance(quorum, int) and quorum < 1:
        raise _invalid(
            "synthesize", f"quorum must be 'any', 'majority', 'all' or a number of tasks >= 1 (got {quorum})"
        )
    groups = _groups(registry, ids)
    selector = _selector(task_ids, group_id)
    full = reads_text_only(ctx)
    if not use_llm:
        merged = await synth.merge(ids, quorum)
        answer = rendering.synthesis_result(merged, registry.usage(ids), None, groups, selector)
        return result(answer, rendering.render_synthesis(answer, merged.markdown, full))
    counts = registry.counts(ids)
    if unfinished := counts.queued + counts.running:
        answer = rendering.pending_synthesis(
            None, registry.usage(ids), unfinished, len(ids), groups, selector
        )
        return result(answer, rendering.render_synthesis(answer, "", full))
    if (nothing := await synth.without_answers(ids)) is not None:
        answer = rendering.synthesis_result(nothing, registry.usage(ids), None, groups, selector)
        return result(answer, rendering.render_synthesis(answer, nothing.markdown, full))
    with _as_tool_errors("synthesize"):
        synthesis_id = await synth.start_llm(ids, instructions)
    await _wait(runtime, [synthesis_id], max(0.0, deadline - anyio.current_time()), ctx)
    with _as_tool_errors("synthesize"):
        done = await synth.result(synthesis_id, ids, quorum)
    total = registry.usage([*ids, *synth.synthesis_tasks(synthesis_id)])
    if done is None:
        answer = rendering.pending_synthesis(synthesis_id, total, 0, len(ids), groups, selector)
        return result(answer, rendering.render_synthesis(answer, "", full))
    answer = rendering.synthesis_result(done, total, synthesis_id, groups, selector)
    return result(answer, rendering.render_synthesis(answer, done.markdown, full))


async def list_tasks(
    ctx: Context,
    group_id: Annotated[str | None, Field(description="Only the tasks of this group.")] = None,
    state: Annotated[TaskState | None, Field(description="Only tasks in this state.")] = None,
    limit: Annotated[int, Field(ge=1, le=10_000, description="Show at most this many (the newest).")] = 100,
) -> Annotated[types.CallToolResult, ListResult]:
    """List tasks (newest last) with state, label, errors and usage, not outputs: to find ids or see
    what runs. For a big group, task_output(group_id, include="status") is smaller."""
    registry = (await runtime_of(ctx)).registry
    with _as_tool_errors("list_tasks"):
        listing = registry.list(group_id, state, limit)
    answer = ListResult(
        counts=listing.counts,
        total=listing.total,
        tasks=[rendering.task_summary(s) for s in listing.tasks],
        next=rendering.list_next(listing.counts),
    )
    return result(answer, rendering.render_list(answer))


async def cancel_tasks(
    ctx: Context,
    task_ids: TaskIds = None,
    group_id: GroupId = None,
) -> Annotated[types.CallToolResult, CancelResult]:
    """Cancel queued or running tasks. Finished ones are left as they are (under already_finished), and
    their outputs stay readable."""
    registry = (await runtime_of(ctx)).registry
    with _as_tool_errors("cancel_tasks"):
        ids = registry.select(task_ids, group_id)
    outcome = registry.cancel(ids)
    with anyio.move_on_after(_CANCEL_GRACE_S):
        await registry.wait(outcome.cancelled)
    counts = registry.counts(ids)
    answer = CancelResult(
        cancelled=outcome.cancelled,
        already_finished=[FinishedTask(task_id=s.task_id, state=s.state) for s in outcome.already_finished],
        counts=counts,
        next=rendering.cancel_next(counts),
    )
    return result(answer, rendering.render_cancel(answer))


def register(mcp: MCPServer[Any], settings: Settings) -> None:
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
