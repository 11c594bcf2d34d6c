"""What a synthesis returns, in either mode, and its markdown rendering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..core.models import TaskSnapshot, Usage
from ..core.state import TaskState
from .findings import Action, Conflict, Location, MergedFinding

Mode = Literal["llm", "merge"]


class Source(BaseModel):
    """A task whose answer went into the synthesis."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    label: str
    chars: int
    structured: bool = False


class Missing(BaseModel):
    """A task with no answer in the synthesis, and why."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    label: str
    state: TaskState
    reason: str


class TextPart(BaseModel):
    """A paragraph or list item of a free-text answer, with every task that said it word for word."""

    model_config = ConfigDict(frozen=True)

    text: str
    sources: list[str]


class Synthesis(BaseModel):
    """One merged answer. ``usage`` is what the synthesis itself cost (nothing for a merge)."""

    model_config = ConfigDict(frozen=True)

    mode: Mode
    summary: str
    findings: list[MergedFinding] = []
    conflicts: list[Conflict] = []
    actions: list[Action] = []
    missing: list[Missing] = []
    sources: list[Source] = []
    markdown: str = ""
    usage: Usage = Usage()
    notes: list[str] = []


def split_answers(snapshots: Sequence[TaskSnapshot]) -> tuple[list[TaskSnapshot], list[Missing]]:
    """Tasks with an answer, and the others with the reason they have none."""
    answered: list[TaskSnapshot] = []
    missing: list[Missing] = []
    for snap in snapshots:
        if snap.state is TaskState.COMPLETED and snap.output and snap.output.strip():
            answered.append(snap)
        else:
            missing.append(
                Missing(task_id=snap.task_id, label=snap.label, state=snap.state, reason=_reason(snap))
            )
    return answered, missing


def _reason(snap: TaskSnapshot) -> str:
    if snap.state is TaskState.FAILED and snap.error is not None:
        return f"{snap.error.kind.value}: {snap.error.message}"
    if snap.state is TaskState.COMPLETED:
        return "completed with an empty answer"
    if snap.state is TaskState.CANCELLED:
        return snap.note or "cancelled"
    if snap.state is TaskState.INTERRUPTED:
        return f"{snap.note or 'interrupted'}; retry_tasks runs it again"
    return f"still {snap.state.value}; call synthesize again later to include it"


def name_missing(missing: Sequence[Missing]) -> str:
    return ", ".join(f"{m.label} [{m.task_id}] ({m.state.value})" for m in missing)


def render_markdown(
    title: str,
    summary: str,
    findings: Sequence[MergedFinding],
    conflicts: Sequence[Conflict],
    actions: Sequence[Action],
    text_parts: Sequence[tuple[TaskSnapshot, Sequence[TextPart]]],
    missing: Sequence[Missing],
) -> str:
    lines = [f"# {title}", "", "## Summary", "", summary.strip()]
    if findings:
        lines += ["", "## Findings", ""]
        for number, finding in enumerate(findings, 1):
            lines += _finding_lines(number, finding)
    if conflicts:
        lines += ["", "## Conflicts", ""]
        for conflict in conflicts:
            lines += _conflict_lines(conflict)
    if actions:
        lines += ["", "## Actions", ""]
        lines += [f"{a.priority}. {a.action} {_cite(a.sources)}" for a in actions]
    for snap, parts in text_parts:
        lines += ["", f"## {snap.label} (`{snap.task_id}`)", ""]
        for part in parts:
            others = [s for s in part.sources if s != snap.task_id]
            also = f" _(also: {', '.join(f'`{o}`' for o in others)})_" if others else ""
            lines += [f"{part.text}{also}", ""]
        if not parts:
            lines += ["_(everything in this answer is already above)_", ""]
    if missing:
        lines += ["", "## Missing", ""]
        lines += [f"- {m.label} (`{m.task_id}`), {m.state.value}: {m.reason}" for m in missing]
    return "\n".join(lines).strip() + "\n"


def _finding_lines(number: int, finding: MergedFinding) -> list[str]:
    support = f"{finding.support} task{'s' if finding.support != 1 else ''}"
    confidence = f", confidence {finding.confidence:.2f}" if finding.confidence is not None else ""
    where = _where(finding.location)
    lines = [
        f"{number}. **[{finding.severity}] {finding.title}**{where} ({support}{confidence}) "
        + _cite(finding.sources)
    ]
    if finding.detail:
        lines.append(f"   {finding.detail.strip()}")
    if finding.recommendation:
        lines.append(f"   Fix: {finding.recommendation.strip()}")
    return lines


def _conflict_lines(conflict: Conflict) -> list[str]:
    lines = [f"- **{conflict.topic}**{_where(conflict.location)}:"]
    lines += [f"  - {side.position} {_cite(side.sources)}" for side in conflict.sides]
    if conflict.resolution:
        reason = f" ({conflict.reason})" if conflict.reason else ""
        lines.append(f"  - Resolution: {conflict.resolution}{reason}")
    return lines


def _where(location: Location | None) -> str:
    if location is None or not location.path:
        return ""
    if location.start_line is None:
        return f" — `{location.path}`"
    end = f"-{location.end_line}" if location.end_line not in (None, location.start_line) else ""
    return f" — `{location.path}:{location.start_line}{end}`"


def _cite(sources: Sequence[str]) -> str:
    return "[" + ", ".join(sources) + "]"
