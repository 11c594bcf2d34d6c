"""The deterministic synthesis: no model call, every part cited by task id.

Tasks that answered with ``findings`` are merged by the rule in ``findings.py`` (duplicates once,
conflicts shown, ranked, quorum). Free-text answers are grouped by task, in spawn order, split into
paragraphs and list items, and a part that several tasks said word for word appears once, citing them
all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

from jsonschema import Draft202012Validator

from ..core.models import TaskSnapshot
from ..intake.answer_schemas import FINDINGS_SCHEMA
from .findings import MAX_FINDINGS_PER_TASK, FindingsMerge, Quorum, merge_findings
from .report import (
    Missing,
    Source,
    Synthesis,
    TextPart,
    name_missing,
    render_markdown,
    split_answers,
)

_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_FINDINGS = Draft202012Validator(FINDINGS_SCHEMA)


def merge(snapshots: Sequence[TaskSnapshot], quorum: Quorum = "any", notes: Sequence[str] = ()) -> Synthesis:
    """Merge the answers of ``snapshots`` without a model."""
    answered, missing = split_answers(snapshots)
    with_findings: list[TaskSnapshot] = []
    free_text: list[TaskSnapshot] = []
    for snapshot in answered:  # one schema check per answer
        (with_findings if has_findings(snapshot.structured) else free_text).append(snapshot)
    structured = {s.task_id for s in with_findings}
    found = merge_findings(
        [(s.task_id, cast(dict[str, Any], s.structured)["findings"]) for s in with_findings], quorum
    )
    text_parts = merge_text(free_text)
    summary = _summary(found, text_parts, len(answered), missing)
    title = f"Merged answers of {len(answered)} task(s)" if answered else "Nothing to synthesize"
    markdown = render_markdown(
        title, summary, found.findings, found.conflicts, found.actions, text_parts, missing
    )
    sources = [
        Source(
            task_id=s.task_id, label=s.label, chars=len(s.output or ""), structured=s.task_id in structured
        )
        for s in answered
    ]
    all_notes = list(notes)
    if found.below_quorum:
        all_notes.append(f"{found.below_quorum} finding(s) were reported by too few tasks for the quorum")
    if found.not_merged:
        all_notes.append(
            f"{found.not_merged} finding(s) past the first {MAX_FINDINGS_PER_TASK} of a task were not merged"
        )
    return Synthesis(
        mode="merge",
        summary=summary,
        findings=found.findings,
        conflicts=found.conflicts,
        actions=found.actions,
        missing=list(missing),
        sources=sources,
        markdown=markdown,
        notes=all_notes,
    )


def has_findings(value: Any) -> bool:
    """Whether a parsed answer is a ``findings`` answer (whatever schema the task was given)."""
    if not isinstance(value, dict) or "findings" not in value:
        return False
    return bool(_FINDINGS.is_valid(cast(dict[str, Any], value)))  # pyright: ignore[reportUnknownMemberType]


def merge_text(answered: Sequence[TaskSnapshot]) -> list[tuple[TaskSnapshot, list[TextPart]]]:
    """Each answer's parts in spawn order; a part said before (word for word) is cited, not repeated."""
    first_said: dict[str, list[str]] = {}
    kept_by_task: list[tuple[TaskSnapshot, list[tuple[str, str]]]] = []
    for snap in answered:
        kept: list[tuple[str, str]] = []
        for text, key in _parts(snap.output or ""):
            cited = first_said.get(key)
            if cited is None:
                first_said[key] = [snap.task_id]
                kept.append((text, key))
            elif snap.task_id not in cited:
                cited.append(snap.task_id)
        kept_by_task.append((snap, kept))
    return [
        (snap, [TextPart(text=text, sources=first_said[key]) for text, key in kept])
        for snap, kept in kept_by_task
    ]


def _parts(text: str) -> list[tuple[str, str]]:
    """Paragraphs, and the items of a paragraph that is a plain list, each with its comparison key."""
    parts: list[tuple[str, str]] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in block.splitlines() if line.strip()]
        items = lines if len(lines) > 1 and all(_BULLET.match(line) for line in lines) else [block.strip()]
        parts.extend((item.rstrip(), _normalise(item)) for item in items if item.strip())
    return parts


def _normalise(text: str) -> str:
    text = _BULLET.sub("", text)
    return re.sub(r"\s+", " ", text).strip().rstrip(".;:").lower()


def _summary(
    found: FindingsMerge, text_parts: Sequence[tuple[TaskSnapshot, Sequence[TextPart]]], answered: int,
    missing: Sequence[Missing],
) -> str:  # fmt: skip
    if not answered:
        return (
            f"Nothing to synthesize: none of the {len(missing)} task(s) has an answer, so no model was "
            f"asked. Why each has none is under Missing: {name_missing(missing)}."
        )
    sentences = [f"Merged {answered} answer(s) without a model."]
    if found.tasks:
        shared = sum(1 for f in found.findings if f.support > 1)
        sentences.append(
            f"{len(found.findings)} distinct finding(s) from {found.tasks} task(s), {shared} reported by "
            f"more than one; {len(found.conflicts)} conflict(s) between tasks."
        )
        if found.findings:
            top = found.findings[0]
            sentences.append(f"Most important: [{top.severity}] {top.title} ({top.support} task(s)).")
    if text_parts:
        parts = sum(len(p) for _, p in text_parts)
        repeated = sum(len(part.sources) - 1 for _, p in text_parts for part in p)
        sentences.append(
            f"{len(text_parts)} free-text answer(s): {parts} distinct part(s), {repeated} repeated part(s) "
            "collapsed, each cited by task id."
        )
    if missing:
        sentences.append(f"{len(missing)} task(s) have no answer: {name_missing(missing)}.")
    return " ".join(sentences)
