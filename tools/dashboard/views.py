"""What a page shows, as plain data: the same dictionaries fill the templates, the event stream's JSON
and the report, so the three never disagree.

The timeline's geometry is computed here, in the units of the SVG's view box, so the page's script only
copies numbers into attributes and the report needs no script at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ...server import Counts, GroupSummary, TaskSnapshot, Usage
from ...server.changes.models import ChangeSet, ChangesOverview, FileChange
from .timeline import Bar

#: the timeline's width in view-box units, and one bar's height
WIDTH: Final = 1000
ROW: Final = 18
#: the most of a task's output one update carries (its end: what just came), and of all its tasks'
LIVE_OUTPUT_CHARS: Final = 4000
_LIVE_TOTAL_CHARS: Final = 200_000

View = dict[str, Any]


def money(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.4f}"


def tokens(usage: Usage) -> str:
    return f"{usage.input_tokens} in / {usage.output_tokens} out"


def task_view(snap: TaskSnapshot, live_chars: int | None = LIVE_OUTPUT_CHARS) -> View:
    """One task; of its output the last ``live_chars`` characters (None: all of it)."""
    output = snap.output or ""
    if live_chars is not None and len(output) > live_chars:
        output = "…" + output[-live_chars:]
    return {
        "id": snap.task_id,
        "label": snap.label,
        "state": snap.state.value,
        "backend": snap.backend,
        "model": snap.model,
        "elapsed": "" if snap.elapsed_s is None else f"{snap.elapsed_s:.1f} s",
        "attempts": snap.attempts,
        "note": snap.note or "",
        "error": "" if snap.error is None else f"{snap.error.kind.value}: {snap.error.message}",
        "tokens": tokens(snap.usage),
        "input_tokens": snap.usage.input_tokens,
        "output_tokens": snap.usage.output_tokens,
        "cost": money(snap.usage.cost_usd),
        "output": output,
        "unfinished": not snap.state.terminal,
    }


def counts_view(counts: Counts) -> dict[str, int]:
    return counts.model_dump()


def group_view(
    summary: GroupSummary,
    snaps: Sequence[TaskSnapshot],
    bars: Sequence[Bar],
    span: float,
    whole_outputs: bool = False,
) -> View:
    """A group's page: its totals, every task (the end of each output, or all of it), and its timeline."""
    budget = "none" if summary.budget_usd is None else money(summary.budget_usd)
    counts = Counts.of([snap.state for snap in snaps])
    # a big group's update stays small: its tasks share what one update carries of their outputs
    live_chars = max(200, min(LIVE_OUTPUT_CHARS, _LIVE_TOTAL_CHARS // max(len(snaps), 1)))
    return {
        "id": summary.group_id,
        "size": summary.tasks,
        "counts": counts_view(counts),
        "unfinished": counts.queued + counts.running,
        "tokens": tokens(summary.usage),
        "cache": f"{summary.usage.cache_read_tokens} read / {summary.usage.cache_write_tokens} written",
        "cost": money(summary.usage.cost_usd),
        "budget": budget,
        "tasks": [task_view(snap, None if whole_outputs else live_chars) for snap in snaps],
        "timeline": timeline_view(bars, span),
    }


def group_row(summary: GroupSummary, counts: Counts) -> View:
    """A group's line on the groups page."""
    return {
        "id": summary.group_id,
        "size": summary.tasks,
        "counts": counts_view(counts),
        "unfinished": counts.queued + counts.running,
        "cost": money(summary.usage.cost_usd),
        "budget": "none" if summary.budget_usd is None else money(summary.budget_usd),
    }


def timeline_view(bars: Sequence[Bar], span: float) -> View:
    """Each bar as rectangles in the view box: queued, then running (to its end, or now), and marks."""
    scale = WIDTH / span if span > 0 else 0.0

    def x(moment: float) -> float:
        return round(moment * scale, 1)

    rows: list[View] = []
    for row, bar in enumerate(bars):
        running_end = bar.ended if bar.ended is not None else span
        queued_end = bar.started if bar.started is not None else running_end
        rows.append(
            {
                "id": bar.task_id,
                "label": bar.label,
                "state": bar.state,
                "y": row * ROW,
                "queued": [x(bar.queued), max(x(queued_end) - x(bar.queued), 0.0)],
                "running": None
                if bar.started is None
                else [x(bar.started), max(x(running_end) - x(bar.started), 1.0)],
                "retries": [x(moment) for moment in bar.retries],
                "title": _bar_title(bar),
            }
        )
    return {"width": WIDTH, "height": max(len(bars), 1) * ROW, "span": f"{span:.1f} s", "bars": rows}


def _bar_title(bar: Bar) -> str:
    parts = [f"{bar.label}: {bar.state}"]
    if bar.started is not None:
        parts.append(f"queued {bar.started - bar.queued:.1f} s")
        end = f", ended at {bar.ended:.1f} s" if bar.ended is not None else ""
        parts.append(f"started at {bar.started:.1f} s{end}")
    if bar.retries:
        parts.append(f"{len(bar.retries)} retr{'y' if len(bar.retries) == 1 else 'ies'}")
    if bar.seen_late:
        parts.append("seen after it ended: its length only")
    return "; ".join(parts)


def edits_view(
    changes: Mapping[str, ChangeSet], overview: ChangesOverview | None, labels: Mapping[str, str]
) -> View:
    """Edit tasks: the files each changed, and (``overview``, None when not computed) the conflict matrix."""
    tasks = [
        {
            "id": task_id,
            "label": labels.get(task_id, task_id),
            "status": change.status,
            "files": [_file(f) for f in change.files] or ["nothing"],
            "outside_scope": ", ".join(change.outside_scope),
        }
        for task_id, change in changes.items()
    ]
    if overview is None:
        return {"tasks": tasks, "matrix": None}
    conflicts = [
        {"between": " × ".join(labels.get(i, i) for i in c.task_ids), "paths": ", ".join(c.paths)}
        for c in overview.conflicts
    ]
    shared = [
        f"{path}: {', '.join(labels.get(i, i) for i in ids)}" for path, ids in overview.shared_files.items()
    ]
    matrix = {"conflicts": conflicts, "clean_pairs": overview.clean_pairs, "shared": shared}
    return {"tasks": tasks, "matrix": matrix}


def _file(change: FileChange) -> str:
    lines = (
        "binary" if change.added is None or change.removed is None else f"+{change.added} −{change.removed}"
    )
    return f"{change.path} ({change.status}, {lines})"
