"""The ``report`` command: the run report of any group the task store keeps, written to one HTML file."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ...server import FanoutError, Settings, UnknownTask
from ...server.fanin.synthesis import SynthesisDone
from ..dashboard.report import READER, render_report, report_edits, write_report
from ..dashboard.timeline import Timeline


async def report_command(settings: Settings, group_id: str, output: Path | None) -> int:
    """Write the report of ``group_id`` to ``output`` (default: ``GROUP_ID.html``); the exit status.

    Its synthesis is a merge of the answers the group has now, made for the report (no model is
    called, nothing is waited for); the timeline has each task's length only (see ``timeline.py``).
    """
    from ...server.app.runtime import open_runtime

    path = output or Path(f"{group_id}.html")
    try:
        async with open_runtime(settings) as runtime:
            ids = await runtime.registry.select(None, group_id, caller=READER)
            merged = await runtime.synthesizer.synthesize(ids, "merge", wait=_now, caller=READER)
            synthesis = merged.synthesis if isinstance(merged, SynthesisDone) else None
            edits = await report_edits(runtime, ids)
            html = render_report(runtime.registry, ids, Timeline(), synthesis, settings, edits)
        write_report(path, html)
    except UnknownTask:
        print(f"fanout-mcp report: the task store keeps no group {group_id}", file=sys.stderr)
        return 1
    except FanoutError as exc:
        print(f"fanout-mcp report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fanout-mcp report: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"fanout-mcp: report of {group_id} written to {path}", file=sys.stderr)
    return 0


async def _now(task_ids: Sequence[str]) -> None:
    """A report waits for no task: an unfinished one is shown as it is."""
