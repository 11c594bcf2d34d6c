"""A model synthesis's answer: the schema every synthesis task answers in, and from that answer to a
``Synthesis``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ..core.models import TaskSnapshot, Usage
from ..intake.answer_schemas import FINDINGS_SCHEMA, SEVERITIES
from .findings import Action, Conflict, ConflictSide, Location, MergedFinding
from .report import Missing, Source, Synthesis, name_missing, render_markdown

_SOURCES: Final[dict[str, Any]] = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_FINDING: Final = FINDINGS_SCHEMA["properties"]["findings"]["items"]

SYNTHESIS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "findings", "conflicts", "actions"],
    "properties": {
        "summary": {
            "type": "string",
            "description": "the overall answer and what matters most, in a few sentences",
        },
        "findings": {
            "type": "array",
            "description": "merged findings, most important first; each once, citing every task that made it",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["title", "severity", "location", "detail", "recommendation", "sources"],
                "properties": {
                    "title": {"type": "string"},
                    "severity": {"type": "string", "enum": list(SEVERITIES)},
                    "location": {"anyOf": [_FINDING["properties"]["location"], {"type": "null"}]},
                    "detail": {"type": "string"},
                    "recommendation": {"type": "string"},
                    "sources": _SOURCES,
                },
            },
        },
        "conflicts": {
            "type": "array",
            "description": "points where tasks disagree: each side with its tasks, and your resolution",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["topic", "sides", "resolution", "reason"],
                "properties": {
                    "topic": {"type": "string"},
                    "sides": {
                        "type": "array",
                        "minItems": 2,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["position", "sources"],
                            "properties": {"position": {"type": "string"}, "sources": _SOURCES},
                        },
                    },
                    "resolution": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
        "actions": {
            "type": "array",
            "description": "what to do, in priority order (1 first)",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["action", "priority", "sources"],
                "properties": {
                    "action": {"type": "string"},
                    "priority": {"type": "integer", "minimum": 1},
                    "sources": _SOURCES,
                },
            },
        },
    },
}


def from_structured(
    value: dict[str, Any],
    answered: Sequence[TaskSnapshot],
    missing: Sequence[Missing],
    usage: Usage,
    notes: list[str],
) -> Synthesis:
    """The synthesis a model answered (``value``, already checked against ``SYNTHESIS_SCHEMA``): its
    summary names every task without an answer that it did not name itself."""
    findings = [_finding(f) for f in value["findings"]]
    conflicts = [_conflict(c) for c in value["conflicts"]]
    actions = sorted((Action(**a) for a in value["actions"]), key=lambda a: a.priority)
    summary = str(value["summary"]).strip()
    unnamed = [m for m in missing if m.task_id not in summary]  # ids, not labels: "task 1" is in "task 12"
    if unnamed:
        summary += f" No answer from: {name_missing(unnamed)}."
    title = f"Synthesis of {len(answered)} answer(s)"
    return Synthesis(
        mode="llm",
        summary=summary,
        findings=findings,
        conflicts=conflicts,
        actions=actions,
        missing=list(missing),
        sources=[_source(s) for s in answered],
        markdown=render_markdown(title, summary, findings, conflicts, actions, [], missing),
        usage=usage,
        notes=notes,
    )


def _finding(f: dict[str, Any]) -> MergedFinding:
    sources = list(dict.fromkeys(f["sources"]))
    return MergedFinding(
        title=f["title"],
        severity=f["severity"],
        location=Location(**f["location"]) if f.get("location") else None,
        detail=f["detail"],
        recommendation=f["recommendation"],
        confidence=None,
        sources=sources,
        support=len(sources),
    )


def _conflict(c: dict[str, Any]) -> Conflict:
    return Conflict(
        kind="other",
        topic=c["topic"],
        sides=[ConflictSide(**side) for side in c["sides"]],
        resolution=c["resolution"],
        reason=c["reason"],
    )


def _source(snap: TaskSnapshot) -> Source:
    return Source(
        task_id=snap.task_id,
        label=snap.label,
        chars=len(snap.output or ""),
        structured=snap.structured is not None,
    )
