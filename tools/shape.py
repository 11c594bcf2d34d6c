"""From engine snapshots to tool results: paging long outputs, and a readable text for each result.

Many clients show the calling model only the text content, so every rendering carries the ids, states,
errors and the next call to make, not only the structured content.
"""

from __future__ import annotations

from fanout_mcp.server import Counts, Synthesis, TaskSnapshot, TaskState, Usage
from fanout_mcp.tools.schemas import (
    CancelResult,
    GroupView,
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


def render_spawn(result: SpawnResult, waited: bool) -> str:
    lines = [f"Started {len(result.tasks)} task(s) in group {result.group_id}:"]
    lines += [f"- {t.task_id}  {t.label}  ({t.state.value})" for t in result.tasks]
    if result.warnings:
        lines.append("\nWarnings:")
        lines += [f"- {w}" for w in result.warnings]
    if not waited or any(not t.state.terminal for t in result.tasks):
        lines.append(
            f'\nThey run in the background. Next: task_output(group_id="{result.group_id}") to collect the '
            f'results (it waits for them), then synthesize(group_id="{result.group_id}") to merge them.'
        )
    else:
        lines.append(f'\nAll finished. Next: task_output(group_id="{result.group_id}") to read the results.')
    return "\n".join(lines)


def render_output(result: TaskOutputResult, max_chars: int) -> str:
    finished = finished_count(result.counts)
    total = len(result.tasks)
    head = f"{finished}/{total} task(s) finished ({describe_counts(result.counts)})."
    if result.done:
        head += " All done."
    else:
        head += (
            f" Not done after waiting {result.waited_s:g} s: call task_output again with the same arguments "
            "to keep waiting (running tasks show their partial output)."
        )
    blocks = [head, f"Usage so far: {describe_usage(result.usage)}.", *map(describe_group, result.groups)]
    blocks += [_render_view(view, max_chars) for view in result.tasks]
    return "\n\n".join(blocks)


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
