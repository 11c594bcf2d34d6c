"""Merging ``findings`` answers without a model: duplicates once, conflicts shown, ranked, with a quorum.

The rule, in full (the README quotes it):

* **Same problem, same place.** Two findings match when their paths are equal once normalised
  (trimmed, ``\\`` turned into ``/``, a leading ``./`` dropped, case ignored); their line ranges overlap
  once each is widened by ``LINE_SLACK`` lines, or either has no lines; and their titles are alike: the
  overlap of their word sets (lower case, without stop words or a plural ``s``) is at least
  ``TITLE_SIMILARITY`` of the smaller set (a title without words matches nothing). Matching findings
  are grouped transitively (connected groups), so the result does not depend on the tasks' order.
* **A merged finding** takes its title, detail and recommendation from its most confident report; its
  severity is the one most reports give (a tie goes to the more severe); its lines span all reports; its
  confidence is their mean; ``sources`` lists every task that reported it and ``support`` counts them.
* **Conflicts** are shown, not resolved, before the quorum is applied: a merged finding that different
  tasks give different severities; and two recommendations for the same place (one group, or groups
  whose locations overlap) that pull opposite ways: one says add and the other remove (or
  enable/disable, increase/decrease, ...) about a shared subject (the rest of their words overlap by at
  least a third), or one says not to do what the other says (the rest nearly the same). Each side lists
  every task that gave that position.
* **Ranking:** severity, then support, then confidence.
* **Quorum:** ``any`` keeps every finding; ``majority`` those reported by more than half of the tasks
  that answered with findings; ``all`` those reported by every one; a number N those reported by at
  least N tasks.
* At most ``MAX_FINDINGS_PER_TASK`` findings of one task are merged (the rest is counted, not merged).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from ..intake.answer_schemas import SEVERITIES

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
    ("use", "avoid"), ("expose", "hide"), ("sync", "async"), ("shorten", "lengthen"), ("widen", "narrow"),
)  # fmt: skip
_OPPOSITE_WORDS: Final = frozenset(word for pair in _OPPOSITES for word in pair)
_NEGATIONS: Final = frozenset({"not", "never", "no", "don't", "dont", "avoid", "stop"})
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # words in any script
_OPPOSED_OVERLAP: Final = 0.34  # opposite verbs: the rest of the two recommendations must overlap this much
_NEGATED_OVERLAP: Final = 0.6  # "do X" / "do not X": the rest must be nearly the same
MAX_FINDINGS_PER_TASK: Final = 200


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
    not_merged: int = 0  #: findings beyond MAX_FINDINGS_PER_TASK of one task, left out


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
    """Merge the findings of several tasks, given as ``(task id, findings)`` in task order.

    Pure and CPU-bound: call it in a worker thread for large inputs.
    """
    reports = [
        _report(task_id, order, f)
        for order, (task_id, found) in enumerate(answers)
        for f in list(found)[:MAX_FINDINGS_PER_TASK]
    ]
    groups = _group(reports)
    merged = sorted(((_merge(group), group) for group in groups), key=lambda pair: _rank_key(pair[0]))
    # Conflicts come from every finding, before the quorum: a minority view is still a disagreement.
    conflicts = _severity_conflicts(merged) + _recommendation_conflicts(merged)
    needed = quorum_needed(quorum, len(answers))
    findings = [finding for finding, _ in merged if finding.support >= needed]
    cut = sum(max(0, len(found) - MAX_FINDINGS_PER_TASK) for _, found in answers)
    return FindingsMerge(
        findings, conflicts, _actions(findings), len(answers), len(merged) - len(findings), cut
    )


def _group(reports: Sequence[_Report]) -> list[list[_Report]]:
    """Connected groups of matching findings (the same whatever order the tasks come in)."""
    parent = list(range(len(reports)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_path: dict[str, list[int]] = {}
    for index, report in enumerate(reports):
        by_path.setdefault(report.path, []).append(index)
    for members in by_path.values():  # only findings in the same file can match
        for position, i in enumerate(members):
            for j in members[position + 1 :]:
                if _same(reports[i], reports[j]):
                    parent[root(i)] = root(j)
    groups: dict[int, list[_Report]] = {}
    for index, report in enumerate(reports):
        groups.setdefault(root(index), []).append(report)
    return list(groups.values())


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
    words = (w.rstrip("s") if len(w) > 3 else w for w in _WORD.findall(text.casefold()))
    return frozenset(w for w in words if w not in _STOP)


def _same(a: _Report, b: _Report) -> bool:
    return a.path == b.path and _lines_meet(a.lines, b.lines) and _alike(a.words, b.words)


def _lines_meet(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    if a is None or b is None:
        return True
    return a[0] - LINE_SLACK <= b[1] + LINE_SLACK and b[0] - LINE_SLACK <= a[1] + LINE_SLACK


def _alike(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:  # a title with no words matches nothing: it says nothing to compare
        return False
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


def _severity_conflicts(merged: Sequence[tuple[MergedFinding, Sequence[_Report]]]) -> list[Conflict]:
    conflicts: list[Conflict] = []
    for finding, group in merged:
        by_severity: dict[str, list[str]] = {}
        for report in sorted(group, key=lambda r: (_RANK.get(r.severity, len(SEVERITIES)), r.order)):
            tasks = by_severity.setdefault(report.severity, [])
            if report.task_id not in tasks:
                tasks.append(report.task_id)
        if len(by_severity) > 1 and len({task for tasks in by_severity.values() for task in tasks}) > 1:
            sides = [ConflictSide(position=f"severity {s}", sources=ids) for s, ids in by_severity.items()]
            conflicts.append(
                Conflict(kind="severity", topic=finding.title, location=finding.location, sides=sides)
            )
    return conflicts


def _recommendation_conflicts(merged: Sequence[tuple[MergedFinding, Sequence[_Report]]]) -> list[Conflict]:
    """Opposed recommendations for one place: each side is every task that gave that recommendation."""
    places = _places(merged)
    conflicts: list[Conflict] = []
    for place in places:
        stances: dict[str, tuple[str, list[str], int]] = {}  # normalised text -> (text, tasks, group)
        for index in place:
            for report in sorted(merged[index][1], key=lambda r: r.order):
                key = _normalise_text(report.recommendation)
                if not key:
                    continue
                tasks = stances.setdefault(key, (report.recommendation, [], index))[1]
                if report.task_id not in tasks:
                    tasks.append(report.task_id)
        keys = list(stances)
        for position, first in enumerate(keys):
            for second in keys[position + 1 :]:
                (text_a, tasks_a, group_a), (text_b, tasks_b, group_b) = stances[first], stances[second]
                if set(tasks_a) == set(tasks_b) and len(tasks_a) == 1:
                    continue  # one task that said both is not a disagreement between tasks
                if _contradict(text_a, text_b):
                    finding = merged[group_a][0]
                    topic = (
                        finding.title
                        if group_a == group_b
                        else f"{finding.title} / {merged[group_b][0].title}"
                    )
                    sides = [ConflictSide(position=text_a, sources=list(tasks_a)),
                             ConflictSide(position=text_b, sources=list(tasks_b))]  # fmt: skip
                    conflicts.append(
                        Conflict(kind="recommendation", topic=topic, location=finding.location, sides=sides)
                    )
    return conflicts


def _places(merged: Sequence[tuple[MergedFinding, Sequence[_Report]]]) -> list[list[int]]:
    """Sets of merged findings at the same place: the same path and line ranges that meet."""
    places: list[list[int]] = []
    for index, (_, group) in enumerate(merged):
        home = next(
            (place for place in places if any(_group_meets(group, merged[other][1]) for other in place)), None
        )
        if home is None:
            places.append([index])
        else:
            home.append(index)
    return places


def _group_meets(a: Sequence[_Report], b: Sequence[_Report]) -> bool:
    return a[0].path == b[0].path and _lines_meet(_span(a), _span(b))


def _span(group: Sequence[_Report]) -> tuple[int, int] | None:
    lines = [r.lines for r in group if r.lines is not None]
    return (min(s[0] for s in lines), max(s[1] for s in lines)) if lines else None


def _contradict(first: str, second: str) -> bool:
    """Opposite verbs about a shared subject, or one negating what the other says."""
    a, b = _content(first), _content(second)
    plain_a, plain_b = a - _NEGATIONS - _OPPOSITE_WORDS, b - _NEGATIONS - _OPPOSITE_WORDS
    if not plain_a & plain_b:
        return False
    if any((x in a and y in b and y not in a) or (y in a and x in b and x not in a) for x, y in _OPPOSITES):
        return _jaccard(plain_a, plain_b) >= _OPPOSED_OVERLAP
    if bool(a & _NEGATIONS) != bool(b & _NEGATIONS):
        return _jaccard(a - _NEGATIONS, b - _NEGATIONS) >= _NEGATED_OVERLAP
    return False


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP or w in _NEGATIONS}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def _normalise_text(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def _actions(findings: Sequence[MergedFinding]) -> list[Action]:
    actions: dict[str, Action] = {}  # normalised text -> action, in first-seen order
    for finding in findings:
        text = finding.recommendation.strip()
        if not text:
            continue
        key = _normalise_text(text)
        known = actions.get(key)
        if known is not None:
            merged = list(dict.fromkeys([*known.sources, *finding.sources]))
            actions[key] = known.model_copy(update={"sources": merged})
            continue
        actions[key] = Action(action=text, priority=len(actions) + 1, sources=list(finding.sources))
    return list(actions.values())
