"""Merging ``findings`` answers without a model: duplicates once, conflicts shown, ranked, with a quorum.

The rule, in full (the README quotes it):

* **Same problem, same place.** Two findings match when their paths are equal once normalised
  (trimmed, ``\\`` turned into ``/``, a leading ``./`` dropped, case ignored); their line ranges overlap
  once each is widened by ``LINE_SLACK`` lines, or either has no lines; and their titles are alike: the
  overlap of their word sets (lower case, without stop words or a plural ``s``) is at least
  ``TITLE_SIMILARITY`` of the smaller set. A finding joins the first group holding a finding it matches.
* **A merged finding** takes its title, detail and recommendation from its most confident report; its
  severity is the one most reports give (a tie goes to the more severe); its lines span all reports; its
  confidence is their mean; ``sources`` lists every task that reported it and ``support`` counts them.
* **Conflicts** are shown, not resolved: a merged finding whose reports give different severities; and
  two recommendations for the same place (one group, or groups whose locations overlap) that share a
  subject but pull opposite ways: one says add and the other remove (or enable/disable,
  increase/decrease, ...), or one says not to do what the other says to do.
* **Ranking:** severity, then support, then confidence.
* **Quorum:** ``any`` keeps every finding; ``majority`` those reported by more than half of the tasks
  that answered with findings; ``all`` those reported by every one; a number N those reported by at
  least N tasks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from fanout_mcp.server.outputs import SEVERITIES

LINE_SLACK: Final = 3
TITLE_SIMILARITY: Final = 0.5

Quorum = Literal["any", "majority", "all"] | int

_RANK: Final = {severity: rank for rank, severity in enumerate(SEVERITIES)}
_STOP: Final = frozenset(
    ("a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "is", "are",
     "be", "was", "were", "it", "its", "this", "that", "these", "those", "into", "via", "as", "can", "may",
     "might", "should", "could", "would", "not", "no")
)  # fmt: skip
_OPPOSITES: Final = (
    ("add", "remove"), ("enable", "disable"), ("increase", "decrease"), ("raise", "lower"),
    ("allow", "deny"), ("allow", "block"), ("keep", "remove"), ("keep", "delete"), ("add", "delete"),
    ("use", "avoid"), ("expose", "hide"), ("sync", "async"), ("more", "fewer"), ("more", "less"),
    ("shorten", "lengthen"), ("split", "merge"), ("inline", "extract"), ("cache", "uncache"),
)  # fmt: skip
_NEGATIONS: Final = frozenset({"not", "never", "no", "don't", "dont", "avoid", "stop"})
_WORD = re.compile(r"[a-z0-9_']+")


class Location(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    start_line: int | None = None
    end_line: int | None = None


class MergedFinding(BaseModel):
    """One problem, however many tasks reported it."""

    model_config = ConfigDict(frozen=True)

    title: str
    severity: str
    location: Location | None
    detail: str
    recommendation: str
    confidence: float | None
    sources: list[str]
    support: int
    other_titles: list[str] = []


class ConflictSide(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str
    sources: list[str]


class Conflict(BaseModel):
    """Tasks that disagree about one thing, each side with its tasks."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["severity", "recommendation", "other"]
    topic: str
    location: Location | None = None
    sides: list[ConflictSide]
    resolution: str | None = None
    reason: str | None = None


class Action(BaseModel):
    """Something to do, most important first."""

    model_config = ConfigDict(frozen=True)

    action: str
    priority: int
    sources: list[str]


@dataclass(frozen=True, slots=True)
class FindingsMerge:
    findings: list[MergedFinding]
    conflicts: list[Conflict]
    actions: list[Action]
    tasks: int  #: tasks that answered with findings
    below_quorum: int  #: merged findings left out by the quorum


@dataclass(frozen=True, slots=True)
class _Report:
    task_id: str
    order: int
    title: str
    severity: str
    path: str
    shown_path: str
    lines: tuple[int, int] | None
    detail: str
    recommendation: str
    confidence: float
    words: frozenset[str]


def merge_findings(
    answers: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], quorum: Quorum = "any"
) -> FindingsMerge:
    """Merge the findings of several tasks, given as ``(task id, findings)`` in task order."""
    reports = [_report(task_id, order, f) for order, (task_id, found) in enumerate(answers) for f in found]
    reports.sort(key=lambda r: (_RANK.get(r.severity, len(SEVERITIES)), -r.confidence, r.order))
    groups: list[list[_Report]] = []
    for report in reports:
        home = next((g for g in groups if any(_same(report, other) for other in g)), None)
        if home is None:
            groups.append([report])
        else:
            home.append(report)
    merged = [(_merge(group), group) for group in groups]
    merged.sort(key=lambda pair: _rank_key(pair[0]))
    needed = quorum_needed(quorum, len(answers))
    kept = [(finding, group) for finding, group in merged if finding.support >= needed]
    conflicts = _severity_conflicts(kept) + _recommendation_conflicts(kept)
    findings = [finding for finding, _ in kept]
    return FindingsMerge(findings, conflicts, _actions(findings), len(answers), len(merged) - len(kept))


def quorum_needed(quorum: Quorum, tasks: int) -> int:
    """How many tasks must report a finding for it to be kept."""
    if quorum == "any":
        return 1
    if quorum == "majority":
        return tasks // 2 + 1
    if quorum == "all":
        return max(tasks, 1)
    return max(int(quorum), 1)


def _report(task_id: str, order: int, finding: Mapping[str, Any]) -> _Report:
    location: Mapping[str, Any] = finding.get("location") or {}
    shown = str(location.get("path") or "").strip()
    given = [int(n) for n in (location.get("start_line"), location.get("end_line")) if n is not None]
    lines = (min(given), max(given)) if given else None
    title = str(finding.get("title", ""))
    return _Report(
        task_id=task_id,
        order=order,
        title=title,
        severity=str(finding.get("severity", "info")),
        path=_normalise_path(shown),
        shown_path=shown,
        lines=lines,
        detail=str(finding.get("detail", "")),
        recommendation=str(finding.get("recommendation", "")),
        confidence=float(finding.get("confidence", 0.0)),
        words=_words(title),
    )


def _normalise_path(path: str) -> str:
    path = path.replace("\\", "/").strip()
    while path.startswith("./"):
        path = path[2:]
    return re.sub(r"/+", "/", path).casefold()


def _words(text: str) -> frozenset[str]:
    words = (w.rstrip("s") if len(w) > 3 else w for w in _WORD.findall(text.lower()))
    return frozenset(w for w in words if w not in _STOP)


def _same(a: _Report, b: _Report) -> bool:
    return a.path == b.path and _lines_meet(a.lines, b.lines) and _alike(a.words, b.words)


def _lines_meet(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    if a is None or b is None:
        return True
    return a[0] - LINE_SLACK <= b[1] + LINE_SLACK and b[0] - LINE_SLACK <= a[1] + LINE_SLACK


def _alike(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / min(len(a), len(b)) >= TITLE_SIMILARITY


def _merge(group: Sequence[_Report]) -> MergedFinding:
    best = max(group, key=lambda r: (r.confidence, -r.order))
    votes = Counter(r.severity for r in group)
    severity = min(votes, key=lambda s: (-votes[s], _RANK.get(s, len(SEVERITIES))))
    spans = [r.lines for r in group if r.lines is not None]
    location = None
    if best.shown_path:
        start = min(s[0] for s in spans) if spans else None
        end = max(s[1] for s in spans) if spans else None
        location = Location(path=best.shown_path, start_line=start, end_line=end)
    sources = [r.task_id for r in sorted(group, key=lambda r: r.order)]
    sources = list(dict.fromkeys(sources))
    titles = list(dict.fromkeys(r.title for r in group if r.title != best.title))
    return MergedFinding(
        title=best.title,
        severity=severity,
        location=location,
        detail=best.detail,
        recommendation=best.recommendation,
        confidence=round(sum(r.confidence for r in group) / len(group), 2),
        sources=sources,
        support=len(sources),
        other_titles=titles,
    )


def _rank_key(finding: MergedFinding) -> tuple[int, int, float]:
    return (_RANK.get(finding.severity, len(SEVERITIES)), -finding.support, -(finding.confidence or 0.0))


def _severity_conflicts(kept: Sequence[tuple[MergedFinding, Sequence[_Report]]]) -> list[Conflict]:
    conflicts: list[Conflict] = []
    for finding, group in kept:
        by_severity: dict[str, list[str]] = {}
        for report in sorted(group, key=lambda r: _RANK.get(r.severity, len(SEVERITIES))):
            by_severity.setdefault(report.severity, [])
            if report.task_id not in by_severity[report.severity]:
                by_severity[report.severity].append(report.task_id)
        if len(by_severity) > 1:
            sides = [ConflictSide(position=f"severity {s}", sources=ids) for s, ids in by_severity.items()]
            conflicts.append(
                Conflict(kind="severity", topic=finding.title, location=finding.location, sides=sides)
            )
    return conflicts


def _recommendation_conflicts(kept: Sequence[tuple[MergedFinding, Sequence[_Report]]]) -> list[Conflict]:
    reports = [(index, report) for index, (_, group) in enumerate(kept) for report in group]
    conflicts: list[Conflict] = []
    seen: set[tuple[str, str]] = set()
    for i, (gi, a) in enumerate(reports):
        for gj, b in reports[i + 1 :]:
            if a.task_id == b.task_id or (a.recommendation, b.recommendation) in seen:
                continue
            same_place = gi == gj or (a.path == b.path and _lines_meet(a.lines, b.lines))
            if same_place and _contradict(a.recommendation, b.recommendation):
                seen.add((a.recommendation, b.recommendation))
                finding = kept[gi][0]
                topic = finding.title if gi == gj else f"{finding.title} / {kept[gj][0].title}"
                conflicts.append(Conflict(
                    kind="recommendation",
                    topic=topic,
                    location=finding.location,
                    sides=[ConflictSide(position=a.recommendation, sources=[a.task_id]),
                           ConflictSide(position=b.recommendation, sources=[b.task_id])],
                ))  # fmt: skip
    return conflicts


def _contradict(first: str, second: str) -> bool:
    a, b = set(_WORD.findall(first.lower())), set(_WORD.findall(second.lower()))
    subject = (a & b) - _STOP - _NEGATIONS - {w for pair in _OPPOSITES for w in pair}
    if not subject:
        return False
    if any((x in a and y in b and y not in a) or (y in a and x in b and x not in a) for x, y in _OPPOSITES):
        return True
    return bool(a & _NEGATIONS) != bool(b & _NEGATIONS)


def _actions(findings: Sequence[MergedFinding]) -> list[Action]:
    actions: list[Action] = []
    seen: dict[str, Action] = {}
    for finding in findings:
        text = finding.recommendation.strip()
        if not text:
            continue
        key = " ".join(_WORD.findall(text.lower()))
        if key in seen:
            known = seen[key]
            merged = list(dict.fromkeys([*known.sources, *finding.sources]))
            actions[actions.index(known)] = seen[key] = known.model_copy(update={"sources": merged})
            continue
        seen[key] = Action(action=text, priority=len(actions) + 1, sources=list(finding.sources))
        actions.append(seen[key])
    return actions
