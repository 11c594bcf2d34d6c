"""From engine snapshots to tool results: paging long outputs, and a readable text for each result.

Many clients show the calling model only the text content, so every rendering carries the ids, states,
errors and the next call to make, not only the structured content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fanout_mcp.server import Counts, Synthesis, TaskSnapshot, TaskState, Usage
from fanout_mcp.tools.schemas import (
    CancelResult,
    GroupView,
    IdsByState,
    ListResult,
    SpawnResult,
    SynthesisResult,
    TaskOutputResult,
    TaskSummary,
    TaskView,
)


def task_view(snap: TaskSnapshot, offset: int, max_chars: int) -> TaskView:
    text = snap.output or ""
    page = text[offset : offset + max_chars]
    end = offset + len(page)
    more = end < len(text)
    return TaskView(
        task_id=snap.task_id,
        group_id=snap.group_id,
        label=snap.label,
        state=snap.state,
        output=page if snap.output is not None else None,
        # The parsed value counts against nothing, so it comes only with a page that holds the whole text.
        structured=snap.structured if offset == 0 and not more else None,
        partial=snap.partial,
        truncated=more,
        next_offset=end if more else None,
        total_chars=len(text),
        error=snap.error,
        note=snap.note,
        stop_reason=snap.stop_reason,
        usage=snap.usage,
        elapsed_s=snap.elapsed_s,
        backend=snap.backend,
        model=snap.model,
    )


def task_summary(snap: TaskSnapshot) -> TaskSummary:
    return TaskSummary(
        task_id=snap.task_id,
        group_id=snap.group_id,
        label=snap.label,
        role=snap.role,
        state=snap.state,
        output_chars=len(snap.output or ""),
        error=snap.error,
        note=snap.note,
        usage=snap.usage,
        elapsed_s=snap.elapsed_s,
        backend=snap.backend,
        model=snap.model,
    )


def ids_by_state(by_state: Mapping[TaskState, Sequence[str]]) -> IdsByState:
    return IdsByState(**{state.value: list(ids) for state, ids in by_state.items()})


def finished_count(counts: Counts) -> int:
    return counts.completed + counts.failed + counts.cancelled


def describe_counts(counts: Counts) -> str:
    parts = [f"{n} {state.value}" for state in TaskState if (n := getattr(counts, state.value))]
    return ", ".join(parts) or "no tasks"


def describe_group(group: GroupView) -> str:
    budget = ""
    if group.budget_usd is not None:
        state = (
            "reached: its unstarted tasks are cancelled" if group.spent_usd >= group.budget_usd else "left"
        )
        budget = f"; budget ${group.budget_usd:g}, ${group.spent_usd:.4f} spent ({state})"
    return f"Group {group.group_id}: {group.tasks} task(s), {describe_usage(group.usage)}{budget}."


def describe_usage(usage: Usage) -> str:
    cost = "cost unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
    cache = ""
    if usage.cache_read_tokens or usage.cache_write_tokens:
        cache = f", cache read {usage.cache_read_tokens} / written {usage.cache_write_tokens}"
    return f"{usage.input_tokens} in / {usage.output_tokens} out tokens{cache}, {cost}"


# --- text renderings ------------------------------------------------------------------------------------


# From this many tasks on, a group is polled with include="status" (counts and ids, a few bytes per task)
# rather than read whole: all outputs of one task_output call share the server's character budget.
BIG_GROUP = 20


def render_spawn(result: SpawnResult, waited: bool) -> str:
    lines = [f"Started {len(result.tasks)} task(s) in group {result.group_id}:"]
    lines += [f"- {t.task_id}  {t.label}  ({t.state.value})" for t in result.tasks]
    if result.warnings:
        lines.append("\nWarnings:")
        lines += [f"- {w}" for w in result.warnings]
    lines.append("\n" + _next_after_spawn(result, waited))
    return "\n".join(lines)


def _next_after_spawn(result: SpawnResult, waited: bool) -> str:
    group = result.group_id
    running = not waited or any(not t.state.terminal for t in result.tasks)
    if len(result.tasks) < BIG_GROUP:
        if running:
            return (
                f'They run in the background. Next: task_output(group_id="{group}") to collect the results '
                f'(it waits for them), then synthesize(group_id="{group}") to merge them.'
            )
        return f'All finished. Next: task_output(group_id="{group}") to read the results.'
    read = (
        f'synthesize(group_id="{group}") to merge their answers, or task_output(task_ids=[...]) with a few '
        "ids at a time to read them"
    )
    if running:
        return (
            f'They run in the background. Next: task_output(group_id="{group}", include="status") to wait '
            f"for them (counts and ids by state, not outputs; call again while done is false), then {read}."
        )
    return f"All finished. Next: {read}."


def render_output(result: TaskOutputResult, max_chars: int) -> str:
    blocks = _render_progress(result, "running tasks show their partial output")
    blocks += [_render_view(view, max_chars) for view in result.tasks]
    return "\n\n".join(blocks)


def render_status(result: TaskOutputResult) -> str:
    """As compact as the structured answer: the ids by state, no output."""
    blocks = _render_progress(result, "only counts and ids come back, not outputs")
    by_state = result.ids_by_state or IdsByState()
    lines = [
        f"{state.value}: {' '.join(ids)}" for state in TaskState if (ids := getattr(by_state, state.value))
    ]
    blocks.append("\n".join(lines))
    blocks.append(
        "Read outputs with task_output(task_ids=[...]) a few ids at a time (one call's outputs share the "
        "server's character budget), or merge them with synthesize without reading them all."
    )
    return "\n\n".join(blocks)


def _render_progress(result: TaskOutputResult, while_waiting: str) -> list[str]:
    counts = result.counts
    finished, total = finished_count(counts), sum(getattr(counts, state.value) for state in TaskState)
    head = f"{finished}/{total} task(s) finished ({describe_counts(counts)})."
    if result.done:
        head += " All done."
    else:
        head += (
            f" Not done after waiting {result.waited_s:g} s: call task_output again with the same arguments "
            f"to keep waiting ({while_waiting})."
        )
    return [head, f"Usage so far: {describe_usage(result.usage)}.", *map(describe_group, result.groups)]


def _render_view(view: TaskView, max_chars: int) -> str:
    facts = [view.state.value]
    if view.elapsed_s is not None:
        facts.append(f"{view.elapsed_s:.1f} s")
    facts += [view.model, describe_usage(view.usage)]
    lines = [f"### {view.label} [{view.task_id}] ({', '.join(facts)})"]
    if view.error is not None:
        lines.append(f"Error ({view.error.kind.value}): {view.error.message}")
    if view.note:
        lines.append(f"Note: {view.note}")
    if view.output:
        label = (
            "Partial output so far:"
            if view.partial and view.state is TaskState.RUNNING
            else ("Partial output (kept):" if view.partial else "Output:")
        )
        lines += [label, view.output]
    elif view.state in {TaskState.QUEUED, TaskState.RUNNING}:
        lines.append("(no output yet)")
    if view.truncated:
        lines.append(
            f"[{view.total_chars - (view.next_offset or 0)} more characters: call task_output with "
            f'task_ids=["{view.task_id}"], offset={view.next_offset}, max_chars={max_chars}]'
        )
    return "\n".join(lines)


def render_list(result: ListResult) -> str:
    if not result.tasks:
        return "No tasks."
    shown = f" (showing the newest {len(result.tasks)})" if len(result.tasks) < result.total else ""
    lines = [f"{result.total} task(s){shown}: {describe_counts(result.counts)}."]
    for t in result.tasks:
        extra = f" - {t.error.kind.value}: {t.error.message}" if t.error else ""
        lines.append(
            f"- {t.task_id} [{t.group_id}] {t.label}: {t.state.value}, {t.output_chars} chars{extra}"
        )
    return "\n".join(lines)


def render_cancel(result: CancelResult) -> str:
    lines = [
        f"Cancelled {len(result.cancelled)} task(s)"
        + (f": {', '.join(result.cancelled)}." if result.cancelled else ".")
    ]
    if result.already_finished:
        lines.append(
            "Already finished (left as they were): "
            + ", ".join(f"{t.task_id} ({t.state.value})" for t in result.already_finished)
        )
    lines.append(f"Now: {describe_counts(result.counts)}.")
    return "\n".join(lines)


def synthesis_result(
    synthesis: Synthesis, total: Usage, synthesis_id: str | None, groups: list[GroupView]
) -> SynthesisResult:
    return SynthesisResult(
        done=True,
        mode=synthesis.mode,
        summary=synthesis.summary,
        findings=synthesis.findings,
        conflicts=synthesis.conflicts,
        actions=synthesis.actions,
        missing=synthesis.missing,
        sources=synthesis.sources,
        markdown=synthesis.markdown,
        usage=synthesis.usage,
        total_usage=total,
        groups=groups,
        synthesis_task_id=synthesis_id,
        notes=synthesis.notes,
    )


def pending_synthesis(
    synthesis_id: str | None, total: Usage, unfinished: int, sources: int, groups: list[GroupView]
) -> SynthesisResult:
    """Not ready: sources still running (no synthesis started yet), or the synthesis itself running."""
    if synthesis_id is None:
        note = (
            f"{unfinished} of {sources} task(s) are still queued or running; the model synthesis starts once "
            "all have ended, so that it is paid for once"
        )
    else:
        note = f"the model synthesis runs as task {synthesis_id}"
    return SynthesisResult(
        done=False,
        mode="llm",
        summary="",
        findings=[],
        conflicts=[],
        actions=[],
        markdown="",
        sources=[],
        missing=[],
        usage=Usage(),
        total_usage=total,
        groups=groups,
        synthesis_task_id=synthesis_id,
        notes=[note],
    )


def render_synthesis(result: SynthesisResult) -> str:
    if not result.done and result.synthesis_task_id is None:
        return (
            f"Not synthesised yet: {result.notes[0]}. Call synthesize again with the same arguments to keep "
            "waiting, cancel_tasks the tasks you no longer need, or call synthesize with mode='merge' to "
            "merge what has finished now (no model call)."
        )
    if not result.done:
        return (
            f"The synthesis is still running as task {result.synthesis_task_id}. Call synthesize again with "
            "the same arguments to get it (the running synthesis is reused, not started again)."
        )
    parts = [result.markdown.strip()]
    if result.notes:
        parts.append("Notes: " + "; ".join(result.notes))
    parts.append(
        f"(synthesis mode: {result.mode}; synthesis {describe_usage(result.usage)}; "
        f"total {describe_usage(result.total_usage)})"
    )
    parts += [describe_group(group) for group in result.groups]
    return "\n\n".join(parts)
