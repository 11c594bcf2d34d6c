"""From engine snapshots to tool results: paging long outputs, the next call to make, and a readable
text for each result.

The structured content is what a model reads (see ``results.py``), so ``next`` lives there; the text
renders it for people and for clients that read only text. ``full`` says which text: every output in
it (a client that reads only the text), or a compact one that leaves the outputs to the structured
content. Both end with the same ``Next:``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..server import Counts, RetryReceipt, SpawnReceipt, Synthesis, TaskSnapshot, TaskState, Usage
from ..server.fanin.synthesis import SynthesisAnswer, SynthesisDone, SynthesisRunning
from .next_calls import retry_next, spawn_next, synthesis_next
from .result_models import (
    CancelResult,
    GroupView,
    IdsByState,
    ListResult,
    RetriedTaskView,
    RetryResult,
    SkippedTasks,
    SpawnedTaskView,
    SpawnResult,
    SynthesisResult,
    TaskOutputResult,
    TaskSummary,
    TaskView,
)


def spawn_result(receipt: SpawnReceipt, snaps: Sequence[TaskSnapshot], waited: bool) -> SpawnResult:
    """spawn_parallel's answer: the spawn, and its tasks as ``snaps`` show them."""
    views = [SpawnedTaskView(task_id=s.task_id, label=s.label, state=s.state) for s in snaps]
    return SpawnResult(
        group_id=receipt.group_id,
        task_ids=[t.task_id for t in receipt.tasks],
        tasks=views,
        warnings=receipt.warnings,
        next=spawn_next(receipt.group_id, views, waited),
    )


SKIPPED_SHOWN = 100  #: ids of one state that retry_tasks left, shown (a whole group may be named)
_STATE_NAMES = tuple(state.value for state in TaskState)  # in order; read at every task_output


def retry_result(receipt: RetryReceipt) -> RetryResult:
    """retry_tasks's answer: the new spawn, and the named tasks left as they were, with why."""
    views = [
        RetriedTaskView(task_id=t.task_id, retry_of=t.retry_of or "", label=t.label, state=t.state)
        for t in receipt.tasks
    ]
    skipped = [
        SkippedTasks(state=state, count=len(ids), task_ids=ids[:SKIPPED_SHOWN], reason=_left_because(state))
        for state, ids in receipt.skipped.items()
        if ids
    ]
    kept = bool(receipt.skipped.get(TaskState.COMPLETED))
    return RetryResult(
        group_id=receipt.group_id,
        tasks=views,
        skipped=skipped,
        warnings=receipt.warnings,
        next=retry_next(receipt.group_id, views, kept),
    )


def _left_because(state: TaskState) -> str:
    if state is TaskState.COMPLETED:
        return "its answer stands (task_output reads it): not run again"
    return "not ended yet: wait for it with task_output, or cancel_tasks it, then retry_tasks again"


def task_view(snap: TaskSnapshot, offset: int, max_chars: int, text_too: bool = False) -> TaskView:
    """One task's page. A task whose answer was parsed (``structured``) and fits whole gets the parsed
    value instead of its text, which says the same a second time (``text_too`` keeps the text, for a
    client that reads only the text rendering); a page of part of it gets the text."""
    text = snap.output or ""
    page = text[offset : offset + max_chars]
    end = offset + len(page)
    more = end < len(text)
    structured = snap.structured if offset == 0 and not more else None
    return TaskView(
        task_id=snap.task_id,
        group_id=snap.group_id,
        label=snap.label,
        state=snap.state,
        retry_of=snap.retry_of,
        output=page if snap.output is not None and (structured is None or text_too) else None,
        structured=structured,
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
        retry_of=snap.retry_of,
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


def describe_counts(counts: Counts) -> str:
    parts = [f"{n} {name}" for name in _STATE_NAMES if (n := getattr(counts, name))]
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


def _with_next(blocks: list[str], next_call: str) -> str:
    return "\n\n".join([*blocks, f"Next: {next_call}"])


def render_spawn(result: SpawnResult) -> str:
    lines = [f"Started {len(result.tasks)} task(s) in group {result.group_id}:"]
    lines += [f"- {t.task_id}  {t.label}  ({t.state.value})" for t in result.tasks]
    if result.warnings:
        lines.append("\nWarnings:")
        lines += [f"- {w}" for w in result.warnings]
    return _with_next(["\n".join(lines)], result.next)


def render_retry(result: RetryResult) -> str:
    lines = [f"Running {len(result.tasks)} task(s) again in group {result.group_id}:"]
    lines += [f"- {t.task_id}  {t.label}  ({t.state.value}), runs {t.retry_of} again" for t in result.tasks]
    if result.skipped:
        lines.append("\nLeft as they were:")
        for left in result.skipped:
            more = f" (and {left.count - len(left.task_ids)} more)" if left.count > len(left.task_ids) else ""
            lines.append(f"- {left.count} {left.state.value}: {' '.join(left.task_ids)}{more}; {left.reason}")
    if result.warnings:
        lines.append("\nWarnings:")
        lines += [f"- {w}" for w in result.warnings]
    return _with_next(["\n".join(lines)], result.next)


def render_output(result: TaskOutputResult, max_chars: int, full: bool) -> str:
    """Every task with its output page (``full``), or a line per task, its output left to the
    structured content."""
    blocks = _render_progress(result, "running tasks show their partial output")
    if full:
        blocks += [_render_view(view, max_chars) for view in result.tasks]
    elif result.tasks:
        blocks.append("\n".join(map(_render_line, result.tasks)))
    return _with_next(blocks, result.next)


def render_status(result: TaskOutputResult, full: bool) -> str:
    """Counts, and the ids by state for a client that reads only this text."""
    blocks = _render_progress(result, "only counts and ids come back, not outputs")
    by_state = result.ids_by_state or IdsByState()
    if full:
        lines = [
            f"{state.value}: {' '.join(ids)}"
            for state in TaskState
            if (ids := getattr(by_state, state.value))
        ]
        blocks.append("\n".join(lines))
    return _with_next(blocks, result.next)


def _render_progress(result: TaskOutputResult, while_waiting: str) -> list[str]:
    counts = result.counts
    finished, total = counts.ended, counts.total
    head = f"{finished}/{total} task(s) finished ({describe_counts(counts)})."
    if result.done:
        head += " All done."
    else:
        head += (
            f" Not done after waiting {result.waited_s:g} s: call task_output again with the same arguments "
            f"to keep waiting ({while_waiting})."
        )
    return [head, f"Usage so far: {describe_usage(result.usage)}.", *map(describe_group, result.groups)]


def _facts(view: TaskView) -> str:
    facts = [view.state.value]
    if view.elapsed_s is not None:
        facts.append(f"{view.elapsed_s:.1f} s")
    facts += [view.model, describe_usage(view.usage)]
    return ", ".join(facts)


def _render_line(view: TaskView) -> str:
    """One task in a line: what the structured content holds of it, not its output."""
    line = f"- {view.label} [{view.task_id}]: {view.state.value}"
    if view.output is not None:
        line += f", {len(view.output)} of {view.total_chars} characters"
    if view.error is not None:
        line += f"; {view.error.kind.value}: {view.error.message}"
    return line


def _render_view(view: TaskView, max_chars: int) -> str:
    lines = [f"### {view.label} [{view.task_id}] ({_facts(view)})"]
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
        return _with_next(["No tasks."], result.next)
    shown = f" (showing the newest {len(result.tasks)})" if len(result.tasks) < result.total else ""
    lines = [f"{result.total} task(s){shown}: {describe_counts(result.counts)}."]
    for t in result.tasks:
        extra = f" - {t.error.kind.value}: {t.error.message}" if t.error else ""
        lines.append(
            f"- {t.task_id} [{t.group_id}] {t.label}: {t.state.value}, {t.output_chars} chars{extra}"
        )
    if result.worktree_bytes:
        disk = ", ".join(f"{group} {size / 1024**2:.1f} MiB" for group, size in result.worktree_bytes.items())
        lines.append(f"Edit worktrees on disk: {disk}.")
    return _with_next(["\n".join(lines)], result.next)


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
    return _with_next(["\n".join(lines)], result.next)


# --- synthesis ----------------------------------------------------------------------------------------


def synthesis_reply(
    answer: SynthesisAnswer, groups: list[GroupView], selector: str, full: bool
) -> tuple[SynthesisResult, str]:
    """The synthesize tool's structured answer, and its text."""
    if isinstance(answer, SynthesisDone):
        done = _synthesis_done(answer.synthesis, answer.total_usage, answer.task_id, groups, selector)
        return done, render_synthesis(done, answer.synthesis.markdown, full)
    if isinstance(answer, SynthesisRunning):
        note = f"the model synthesis runs as task {answer.task_id}"
        pending = _synthesis_pending(answer.task_id, answer.total_usage, note, groups, selector)
    else:
        note = (
            f"{answer.unfinished} of {answer.sources} task(s) are still queued or running; the model "
            "synthesis starts once all have ended, so that it is paid for once"
        )
        pending = _synthesis_pending(None, answer.total_usage, note, groups, selector)
    return pending, render_synthesis(pending, "", full)


def _synthesis_done(
    synthesis: Synthesis, total: Usage, synthesis_id: str | None, groups: list[GroupView], selector: str
) -> SynthesisResult:
    """The structured answer: the merged findings, conflicts and actions as they are, and the markdown
    only for what is nowhere else (the merged paragraphs of free-text answers)."""
    free_text = synthesis.mode == "merge" and any(not source.structured for source in synthesis.sources)
    return SynthesisResult(
        done=True,
        mode=synthesis.mode,
        summary=synthesis.summary,
        findings=synthesis.findings,
        conflicts=synthesis.conflicts,
        actions=synthesis.actions,
        missing=synthesis.missing,
        sources=synthesis.sources,
        markdown=synthesis.markdown if free_text else None,
        usage=synthesis.usage,
        total_usage=total,
        groups=groups,
        synthesis_task_id=synthesis_id,
        notes=synthesis.notes,
        next=synthesis_next(
            True,
            synthesis_id,
            len(synthesis.missing),
            selector,
            sum(m.state.retryable for m in synthesis.missing),
        ),
    )


def _synthesis_pending(
    synthesis_id: str | None, total: Usage, note: str, groups: list[GroupView], selector: str
) -> SynthesisResult:
    """Not ready: sources still running (no synthesis started yet), or the synthesis itself running."""
    return SynthesisResult(
        done=False,
        mode="llm",
        summary="",
        findings=[],
        conflicts=[],
        actions=[],
        sources=[],
        missing=[],
        usage=Usage(),
        total_usage=total,
        groups=groups,
        synthesis_task_id=synthesis_id,
        notes=[note],
        next=synthesis_next(False, synthesis_id, 0, selector),
    )


def render_synthesis(result: SynthesisResult, markdown: str, full: bool) -> str:
    """The whole merged answer (``full``, or when the structured content holds it anyway), or what it
    holds in a few lines."""
    if not result.done and result.synthesis_task_id is None:
        return _with_next([f"Not synthesised yet: {result.notes[0]}."], result.next)
    if not result.done:
        return _with_next(
            [f"The synthesis is still running as task {result.synthesis_task_id}."], result.next
        )
    parts = [markdown.strip() if full else _synthesis_outline(result)]
    if result.notes:
        parts.append("Notes: " + "; ".join(result.notes))
    parts.append(
        f"(synthesis mode: {result.mode}; synthesis {describe_usage(result.usage)}; "
        f"total {describe_usage(result.total_usage)})"
    )
    parts += [describe_group(group) for group in result.groups]
    return _with_next(parts, result.next)


def _synthesis_outline(result: SynthesisResult) -> str:
    counted = [
        f"{len(result.sources)} answer(s) merged",
        f"{len(result.findings)} finding(s)",
        f"{len(result.conflicts)} conflict(s)",
        f"{len(result.actions)} action(s)",
        f"{len(result.missing)} task(s) without an answer",
    ]
    return f"{result.summary.strip()}\n\n{', '.join(counted)} (all in the structured content)."
