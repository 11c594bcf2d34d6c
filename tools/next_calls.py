"""The next call a tool result names, and why: what a model reads in ``next`` (see ``results.py``), and
the text's last line."""

from __future__ import annotations

from collections.abc import Sequence

from ..server import Counts
from .result_models import SpawnedTaskView, TaskView


def finished_count(counts: Counts) -> int:
    """Tasks that have ended, in any way (``interrupted``: their server process ended first)."""
    return counts.completed + counts.failed + counts.cancelled + counts.interrupted


# From this many tasks on, a group is polled with include="status" (counts and ids, a few bytes per task)
# rather than read whole: all outputs of one task_output call share the server's character budget.
BIG_GROUP = 20


def spawn_next(group_id: str, tasks: Sequence[SpawnedTaskView], waited: bool) -> str:
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


def output_next(counts: Counts, tasks: Sequence[TaskView], status: bool, selector: str) -> str:
    """After task_output: wait on, read the rest of a truncated output, or merge. ``selector`` is how the
    call named its tasks (``group_id="g-…"``, or the same task_ids)."""
    if unfinished := counts.queued + counts.running:
        return f"task_output again with the same arguments: {unfinished} task(s) still queued or running."
    cut = [view for view in tasks if view.truncated]
    if cut:
        first = cut[0]
        also = f" ({len(cut) - 1} more truncated the same way)" if len(cut) > 1 else ""
        return (
            f'task_output(task_ids=["{first.task_id}"], offset={first.next_offset}) for the rest of '
            f"{first.label}{also}; or synthesize({selector}) to merge the answers."
        )
    if status:
        return f"synthesize({selector}) to merge the answers, or task_output(task_ids=[...]) for a few."
    return f"synthesize({selector}) to merge the answers."


def synthesis_next(done: bool, synthesis_id: str | None, missing: int, selector: str) -> str:
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
    if missing:
        return "Nothing more: this is the merged answer. The tasks under missing gave none (see reason)."
    return "Nothing more: this is the merged answer."


def list_next(counts: Counts) -> str:
    if not finished_count(counts) + counts.queued + counts.running:
        return "spawn_parallel to start tasks."
    if counts.queued + counts.running:
        return (
            "task_output(task_ids=[...]) to wait for and read them; cancel_tasks to stop any still running."
        )
    return "task_output(task_ids=[...]) to read outputs."


def cancel_next(counts: Counts) -> str:
    if counts.completed:
        return "task_output or synthesize still read the completed tasks' outputs."
    return "Nothing: none of these tasks runs any more."
