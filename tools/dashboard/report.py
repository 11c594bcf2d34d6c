"""The run report: one HTML file for one group, opened from disk with no network.

It holds the timeline (the same SVG as the dashboard's), every task's state, tokens, cost and whole
output, the group's totals, the synthesis with its conflicts and missing tasks, and the settings of the
process that ran it (``run --report``) or wrote it (``report``). Nothing is fetched: the stylesheet is
inlined and allowed by its hash in the file's own Content-Security-Policy, which allows nothing else
(no script at all, no image, no connection), so an output can never run as code or call out, even if a
browser's escaping were bypassed. Every value is escaped by Jinja2.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from markupsafe import Markup

from ...server import OPTIONS, Caller, Settings, Synthesis, TaskRegistry
from ..identity import package_version
from .app import templates
from .edits import read_edits
from .events import TICK_S
from .timeline import Timeline
from .views import View, group_view

if TYPE_CHECKING:
    from ...server import Runtime

#: who a report reads tasks as: the process's own user, who may read the store's every group
READER = Caller.local(operator=True)


def render_report(
    registry: TaskRegistry,
    task_ids: Sequence[str],
    timeline: Timeline,
    synthesis: Synthesis | None,
    settings: Settings,
    edits: View | None = None,
) -> str:
    """The report of ``task_ids`` (one group's, as ``select`` returned them) as one HTML document."""
    snaps = registry.snapshots(task_ids)
    group_id = snaps[0].group_id if snaps else ""
    bars, span = timeline.bars(snaps)
    view = group_view(registry.group_summary(group_id), snaps, bars, span, whole_outputs=True)
    css = (Path(__file__).with_name("static") / "dashboard.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return (
        templates()
        .get_template("report.html")
        .render(
            group=view,
            synthesis=synthesis,
            edits=edits,
            settings=_settings_rows(settings),
            css=Markup(css),  # ours, unescaped (a <style> decodes no entity), hashed into the policy
            style_hash=f"sha256-{digest}",
            version=package_version(),
            written=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        )
    )


async def report_edits(runtime: Runtime, task_ids: Sequence[str]) -> View | None:
    """The edit tasks' part of the report (``edits.py``), the labels as the registry has them."""
    labels = {snap.task_id: snap.label for snap in runtime.registry.snapshots(task_ids)}
    return await read_edits(runtime.changes, task_ids, labels)


def write_report(path: Path, html: str) -> None:
    """Write the report whole or not at all (a half-written file never replaces a good one)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)


def _settings_rows(settings: Settings) -> list[tuple[str, str]]:
    values = settings.model_dump(include=set(OPTIONS))
    return [(OPTIONS[name].flag, _shown(values[name])) for name in OPTIONS if name in values]


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "none"  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    return "default" if value is None else str(value)


@asynccontextmanager
async def observing(
    registry: TaskRegistry, task_ids: Sequence[str], timeline: Timeline
) -> AsyncGenerator[None]:
    """Note the tasks' moments in ``timeline`` while the body runs (a run's report's timeline): their
    snapshots every ``TICK_S`` (this process runs them: memory only), and every retry as it happens."""
    registry.on_retry(timeline.retried)

    async def watch() -> None:
        while True:
            timeline.observe(registry.snapshots(task_ids))
            await anyio.sleep(TICK_S)

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
