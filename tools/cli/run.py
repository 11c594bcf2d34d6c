"""The ``run`` command: a plan file run start to finish, its progress on stderr, its results on stdout.

Stopping it: the first SIGINT (Ctrl-C), SIGTERM or SIGHUP cancels the fan-out. Every unfinished task is
cancelled and ends (an agent CLI gets its grace), then what finished is printed as a finished run
would print it, with the merge of the completed answers if the plan asks for ``merge`` or ``auto``; a
stopped run never waits on a provider again, so ``auto`` merges and ``llm`` gives no synthesis. The
exit status is 128 + the signal's number. A second signal exits at once (see ``signals``).
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...server import FanoutError
from ...server.app.plan import PlanOutcome, finish_plan, load_plan, start_plan, stop_plan
from ..dashboard.timeline import Timeline
from ..rendering import describe_usage
from .heap import freeze_startup_heap
from .progress import showing_progress
from .signals import StopSignals, exit_status, stop_signals

if TYPE_CHECKING:
    from ...server import Runtime, Settings, SpawnReceipt
    from ...server.app.plan import Plan


async def run_command(settings: Settings, plan_path: Path, as_json: bool, report: Path | None = None) -> int:
    """Run the plan at ``plan_path``; the command's exit status. ``report``: where to write the run
    report (``tools/dashboard/report.py``), finished or stopped part-way."""
    from ...server.app.runtime import open_runtime  # the Anthropic SDK: only a run needs it

    outcome: PlanOutcome | None = None
    stop = StopSignals()
    timeline = None if report is None else Timeline()
    try:
        plan = load_plan(plan_path)
        async with stop_signals() as stop, open_runtime(settings) as runtime:
            freeze_startup_heap()
            outcome = await _run(runtime, plan, stop, timeline)
            if outcome is not None:
                print(_as_json(outcome) if as_json else _as_markdown(outcome), flush=True)
                if report is not None and timeline is not None:
                    await _write_report(runtime, outcome, timeline, report)
    except FanoutError as exc:
        print(f"fanout-mcp: {exc}", file=sys.stderr)
        return 2
    if stop.received is not None:
        return exit_status(stop.received)
    assert outcome is not None
    return 0 if all(t.state == "completed" for t in outcome.tasks) else 1


async def _run(
    runtime: Runtime, plan: Plan, stop: StopSignals, timeline: Timeline | None
) -> PlanOutcome | None:
    """The plan's outcome, finished or stopped part-way; None if stopped before its tasks were spawned.
    ``timeline`` notes the tasks' moments while they run, for the report."""
    receipt: SpawnReceipt | None = None
    with stop.scope:
        receipt = await start_plan(runtime, plan)
        async with (
            showing_progress(runtime.registry, receipt) as on_finish,
            _observing(runtime, receipt, timeline),
        ):
            return await finish_plan(runtime, plan, receipt, on_finish)
    assert stop.received is not None  # only a signal cancels the scope
    reason = f"stopped by {stop.received.name}"
    if receipt is None:
        print(f"fanout-mcp: {reason} before any task started", file=sys.stderr)
        return None
    print(
        f"fanout-mcp: {reason}: cancelling the unfinished tasks, then printing what finished "
        f"(send {stop.received.name} again to exit at once)",
        file=sys.stderr,
        flush=True,
    )
    outcome = await stop_plan(runtime, plan, receipt, reason)
    if plan.synthesis.mode == "llm":
        print(
            "fanout-mcp: no synthesis: the plan asks a model for one, and a stopped run calls none",
            file=sys.stderr,
        )
    return outcome


def _observing(
    runtime: Runtime, receipt: SpawnReceipt, timeline: Timeline | None
) -> AbstractAsyncContextManager[None]:
    if timeline is None:
        return nullcontext()
    from ..dashboard.report import observing

    return observing(runtime.registry, [t.task_id for t in receipt.tasks], timeline)


async def _write_report(runtime: Runtime, outcome: PlanOutcome, timeline: Timeline, path: Path) -> None:
    from ..dashboard.report import render_report, report_edits, write_report

    ids = [snap.task_id for snap in outcome.tasks]
    edits = await report_edits(runtime, ids)
    html = render_report(runtime.registry, ids, timeline, outcome.synthesis, runtime.settings, edits)
    try:
        write_report(path, html)
    except OSError as exc:
        print(f"fanout-mcp: cannot write the report to {path}: {exc.strerror}", file=sys.stderr)
        return
    print(f"fanout-mcp: report written to {path}", file=sys.stderr)


def _as_markdown(outcome: PlanOutcome) -> str:
    lines = [f"# Fan-out {outcome.receipt.group_id}"]
    if outcome.stopped is not None:
        done = sum(snap.state == "completed" for snap in outcome.tasks)
        lines.append(f"> {outcome.stopped}: {done} of {len(outcome.tasks)} task(s) completed")
    lines += [f"> warning: {w}" for w in outcome.receipt.warnings]
    for snap in outcome.tasks:
        lines.append(
            f"\n## {snap.label} [{snap.task_id}] ({snap.state.value}; {describe_usage(snap.usage)})\n"
        )
        if snap.error is not None:
            lines.append(f"**{snap.error.kind.value}**: {snap.error.message}\n")
        if snap.output:
            lines.append(snap.output.strip() + "\n")
    if outcome.synthesis is not None:
        lines.append(f"\n# Synthesis ({outcome.synthesis.mode})\n")
        lines.append(outcome.synthesis.markdown.strip())
        lines += [f"\n> note: {n}" for n in outcome.synthesis.notes]
    lines += _changes_markdown(outcome)
    return "\n".join(lines)


def _changes_markdown(outcome: PlanOutcome) -> list[str]:
    """The edit tasks' conflict matrix and apply preview, then what the plan's apply did."""
    if outcome.changes is None:
        return []
    labels = {snap.task_id: f"{snap.label} [{snap.task_id}]" for snap in outcome.tasks}
    changes = outcome.changes
    lines = ["\n# Changes\n"]
    for conflict in changes.conflicts:
        first, second = (labels[task_id] for task_id in conflict.task_ids)
        lines.append(f"- conflict: {first} and {second}: {', '.join(conflict.paths)}")
    lines.append(f"- {len(changes.conflicts)} conflicting pair(s), {changes.clean_pairs} that merge cleanly")
    lines += [
        f"- shared: {path} ({', '.join(labels[i] for i in ids)})"
        for path, ids in changes.shared_files.items()
    ]
    for step in changes.preview:
        said = "applies" if step.applies else f"does not apply: {', '.join(step.conflicts)}"
        lines.append(f"- preview: {labels[step.task_id]} {said}")
    applied = outcome.applied
    if applied is not None:
        done = f"Applied ({applied.apply_id})" if applied.apply_id else "Applied: nothing"
        lines.append(f"\n# {'Apply (dry run)' if applied.dry_run else done}\n")
        lines += [f"- applied: {labels[task_id]}" for task_id in applied.applied]
        lines += [
            f"- skipped: {labels[s.task_id]}: {s.why} {', '.join(s.paths)}".rstrip() for s in applied.skipped
        ]
    return lines


def _as_json(outcome: PlanOutcome) -> str:
    data: dict[str, Any] = {
        "group_id": outcome.receipt.group_id,
        "stopped": outcome.stopped,
        "warnings": outcome.receipt.warnings,
        "tasks": [snap.model_dump(mode="json") for snap in outcome.tasks],
        "synthesis": outcome.synthesis.model_dump(mode="json") if outcome.synthesis else None,
        "changes": outcome.changes.model_dump(mode="json") if outcome.changes else None,
        "applied": outcome.applied.model_dump(mode="json") if outcome.applied else None,
    }
    return json.dumps(data, indent=2)
