"""The next call a tool result names, and why: what a model reads in ``next`` (see ``results.py``), and
the text's last line."""

from __future__ import annotations

from collections.abc import Sequence

from ..server import Counts
from ..server.changes.models import ApplyOutcome, Resolution, UndoOutcome
from .result_models import RetriedTaskView, SpawnedTaskView, TaskView

# From this many tasks on, a group is polled with include="status" (counts and ids, a few bytes per task)
# rather than read whole: all outputs of one task_output call share the server's character budget.
BIG_GROUP = 20


def spawn_next(group_id: str, tasks: Sequence[SpawnedTaskView | RetriedTaskView], waited: bool) -> str:
    group = f'group_id="{group_id}"'
    running = not waited or any(not t.state.terminal for t in tasks)
    if len(tasks) < BIG_GROUP:
        if running:
            return (
                f"task_output({group}) to collect the results (it waits for them), then synthesize({group})."
            )
        return f"task_output({group}) to read the results, or synthesize({group}) to merge them."
    read = f"synthesize({group}) to merge the answers, or task_output(task_ids=[...]) for a few at a time"
    if running:
        return f'task_output({group}, include="status") to wait (ids by state, not outputs), then {read}.'
    return f"{read}."


def retry_next(group_id: str, tasks: Sequence[RetriedTaskView], kept: bool) -> str:
    """After retry_tasks: collect the re-runs as after a spawn; with the answers that stood, if any."""
    collect = spawn_next(group_id, tasks, waited=False)
    if not kept:
        return collect
    return (
        f"{collect} To merge them with the answers that stood, synthesize(task_ids=[...]) with the new ids "
        "and the completed ones'."
    )


def _again(counts: Counts, selector: str) -> str:
    """What to add to a next call when some of the tasks ended without an answer."""
    if not counts.retryable:
        return ""
    n = counts.retryable
    return f" retry_tasks({selector}) runs the {n} failed, cancelled or interrupted task(s) again."


def output_next(
    counts: Counts, tasks: Sequence[TaskView], status: bool, selector: str, patch: bool = False
) -> str:
    """After task_output: wait on, read the rest of a truncated output, or merge. ``selector`` is how the
    call named its tasks (``group_id="g-…"``, or the same task_ids); ``patch``: the outputs are patches."""
    if unfinished := counts.queued + counts.running:
        return f"task_output again with the same arguments: {unfinished} task(s) still queued or running."
    then = (
        f"apply_changes({selector}) to see what would apply."
        if patch
        else f"synthesize({selector}) to merge the answers."
    )
    cut = [view for view in tasks if view.truncated]
    if cut:
        first = cut[0]
        also = f" ({len(cut) - 1} more truncated the same way)" if len(cut) > 1 else ""
        more = ', include="patch"' if patch else ""
        return (
            f'task_output(task_ids=["{first.task_id}"], offset={first.next_offset}{more}) for the rest of '
            f"{first.label}{also}; or {then}{_again(counts, selector)}"
        )
    if patch:
        return then
    if status:
        return (
            f"synthesize({selector}) to merge the answers, or task_output(task_ids=[...]) for a few."
            f"{_again(counts, selector)}"
        )
    return f"synthesize({selector}) to merge the answers.{_again(counts, selector)}"


def synthesis_next(
    done: bool, synthesis_id: str | None, missing: int, selector: str, retryable: int = 0
) -> str:
    if not done and synthesis_id is None:
        return (
            f"synthesize({selector}) again to keep waiting, cancel_tasks what you no longer need, or "
            f'synthesize({selector}, mode="merge") to merge what has finished now (no model call).'
        )
    if not done:
        return (
            f"synthesize({selector}) again with the same arguments: synthesis task {synthesis_id} is "
            "picked up, not started again."
        )
    if retryable:
        return (
            "This is the merged answer. The tasks under missing gave none (see reason): retry_tasks(task_ids="
            f"[...]) with the ids of the {retryable} failed, cancelled or interrupted runs them again, then "
            "synthesize again."
        )
    if missing:
        return "Nothing more: this is the merged answer. The tasks under missing gave none (see reason)."
    return "Nothing more: this is the merged answer."


def list_next(counts: Counts) -> str:
    if not counts.ended + counts.queued + counts.running:
        return "spawn_parallel to start tasks."
    again = _again(counts, "task_ids=[...]")
    if counts.queued + counts.running:
        return (
            "task_output(task_ids=[...]) to wait for and read them; cancel_tasks to stop any still running."
            + again
        )
    return "task_output(task_ids=[...]) to read outputs." + again


def cancel_next(counts: Counts) -> str:
    if counts.completed:
        return "task_output or synthesize still read the completed tasks' outputs."
    return "Nothing: none of these tasks runs any more."


def apply_next(outcome: ApplyOutcome, selector: str) -> str:
    """After apply_changes: apply for real after a dry run, or how to undo; what to do with the skipped."""
    skipped = [s.task_id for s in outcome.skipped if s.paths]
    rest = (
        f" Skipped for conflicts: {', '.join(skipped)}; apply_changes(task_ids=[...], discard=true) drops "
        "them, or re-run them with spawn_parallel(edit=true) on the tree as it is now."
        if skipped
        else ""
    )
    if outcome.dry_run and skipped:
        rest += (
            " Sets that conflict with each other (synthesize shows the pairs): apply_changes(resolve=[...]) "
            "starts an edit task that merges them."
        )
    if outcome.dry_run:
        if not outcome.applied:
            return f"Nothing would apply.{rest}"
        return f"apply_changes({selector}, dry_run=false) to apply what applies.{rest}"
    if outcome.apply_id is None:
        return f"Nothing was applied.{rest}"
    return (
        f'Applied. apply_changes(undo="{outcome.apply_id}") reverses it while its files are unchanged.{rest}'
    )


def resolve_next(started: Resolution) -> str:
    return (
        f'task_output(task_ids=["{started.task_id}"], wait_s=120) waits for the resolving task; then '
        f'apply_changes(task_ids=["{started.task_id}"]) applies its set, which holds every one of those '
        "tasks' changes: apply it instead of theirs."
    )


def undo_next(outcome: UndoOutcome) -> str:
    if outcome.undone:
        return "Undone: those tasks' changes can be applied again with apply_changes (a dry run first)."
    return (
        "Not undone: the files under changed_since were edited since. Apply reverse_patch yourself "
        "with git apply where you still want it reversed."
    )


def discard_next(discarded: Sequence[str]) -> str:
    if not discarded:
        return "Nothing to discard: none of these is an edit task with changes kept."
    return "Nothing more: their worktrees and refs are gone; what was applied stays in the tree."
