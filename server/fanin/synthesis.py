"""Fan-in: turning the answers of a spawn into one answer.

``merge`` is deterministic (``merge.py``). ``start_llm`` runs a model synthesis as tasks of the
registry, so a long synthesis outlives no tool call: one task when the answers fit the synthesis input
budget; otherwise the answers are packed into groups that fit (an answer too long for one group is split
across groups, never cut), each group is synthesised by a task, and a last task, which depends on those,
merges their syntheses. Every synthesis answers in ``SYNTHESIS_SCHEMA``, is validated like any output
schema, and may cite only the ids of the tasks it was given. If the model synthesis fails, ``result``
falls back to a merge and says so.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import anyio
import anyio.to_thread

from ..backends import Backend
from ..backends.roster import Roster
from ..config.settings import Settings
from ..core.errors import UnknownTask
from ..core.models import SubagentRequest, TaskSnapshot, TaskSpec, Usage
from ..core.registry import TaskRegistry
from ..core.state import TaskState
from ..intake.answer_schemas import FINDINGS_SCHEMA, SEVERITIES
from ..intake.prepare import PlannedTask
from ..intake.subagent_prompt import output_format
from .findings import Action, Conflict, ConflictSide, Location, MergedFinding, Quorum
from .merge import merge
from .report import Missing, Source, Synthesis, name_missing, render_markdown, split_answers

_MAX_REMEMBERED = 256
_MIN_ANSWER_BUDGET = 1_000
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

SYSTEM: Final = """\
You merge the answers of subagents that worked in parallel on parts of one job into a single answer.
Each answer is given inside <answer task_id="..." label="..."> tags. Work in these steps:
1. Merge related findings: a point several answers make appears once, citing every task that made it.
2. Resolve conflicts between recommendations: give each side with its tasks, then your resolution and
   its reason.
3. Prioritise by severity or importance, most important first.
4. End with an actionable summary and a prioritised list of actions.
Cite sources only by the task ids given in the tags. Add nothing that no answer supports. If some tasks
are listed as missing, name them in the summary and say what their absence leaves open."""

_MERGE_PARTIALS: Final = """\
The answers were too long to synthesise at once, so they were synthesised in groups. The group
syntheses are below, as JSON, under "Results of the tasks this task depends on". Merge them into one
synthesis of the same shape: the same finding from several groups appears once with all its sources,
conflicts keep every side, priorities are renumbered. Cite only the task ids the groups cite."""
_ANSWER_IN_SCHEMA: Final = output_format(None, SYNTHESIS_SCHEMA)


@dataclass(frozen=True, slots=True)
class _Job:
    final: str
    tasks: tuple[str, ...]  #: every synthesis task of the job, the final one included


class Synthesizer:
    """Builds syntheses over a registry; remembers model syntheses so a repeated call reuses one."""

    def __init__(self, registry: TaskRegistry, settings: Settings, backends: Roster) -> None:
        self._registry = registry
        self._settings = settings
        self._backends = backends
        self._jobs: OrderedDict[tuple[object, ...], _Job] = OrderedDict()

    async def merge(
        self, task_ids: Sequence[str], quorum: Quorum = "any", notes: Sequence[str] = ()
    ) -> Synthesis:
        """The deterministic merge, in a worker thread (it can be heavy), over snapshots taken here."""
        snapshots = self._registry.snapshots(task_ids)
        return await anyio.to_thread.run_sync(merge, snapshots, quorum, notes)

    async def without_answers(self, task_ids: Sequence[str]) -> Synthesis | None:
        """If none of these tasks has an answer, the synthesis that says so and why each has none, with no
        model call (one would be paid to read nothing); else None."""
        snapshots = self._registry.snapshots(task_ids)
        answered, _ = split_answers(snapshots)
        if answered:
            return None
        note = "no model synthesis was started: there is no answer to synthesize"
        return await anyio.to_thread.run_sync(merge, snapshots, "any", [note])

    async def start_llm(self, task_ids: Sequence[str], instructions: str | None) -> str:
        """The id of the model synthesis over these tasks: the one already started for the same tasks and
        instructions unless it failed or was cancelled, else a new one. Start it once the tasks have
        ended: their answers are read now."""
        key = (tuple(task_ids), instructions)
        known = self._jobs.get(key)
        if known is not None and self._reusable(known.final):
            self._jobs.move_to_end(key)
            return known.final
        answered, missing = split_answers(self._registry.snapshots(task_ids))
        backend = self._backends.choose(None)
        # Cutting and packing every answer into prompts takes time in proportion to them: off the loop.
        planned = await anyio.to_thread.run_sync(
            self._plan, answered, missing, instructions, backend, abandon_on_cancel=True
        )
        ids = await self._registry.spawn_planned(planned)
        self._jobs[key] = _Job(final=ids[-1], tasks=tuple(ids))
        while len(self._jobs) > _MAX_REMEMBERED:
            self._jobs.popitem(last=False)
        return ids[-1]

    def synthesis_tasks(self, final_id: str) -> list[str]:
        """Every task of the synthesis whose last task is ``final_id`` (for its usage)."""
        job = next((job for job in self._jobs.values() if job.final == final_id), None)
        return list(job.tasks) if job else [final_id]

    async def result(
        self, final_id: str, task_ids: Sequence[str], quorum: Quorum = "any"
    ) -> Synthesis | None:
        """The finished synthesis; ``None`` while it runs; a merge (with a note) if it failed."""
        answer = self._registry.snapshot(final_id)
        if not answer.state.terminal:
            return None
        usage = self._registry.usage(self.synthesis_tasks(final_id))
        snapshots = self._registry.snapshots(task_ids)
        structured: Any = answer.structured
        if answer.state is not TaskState.COMPLETED or not isinstance(structured, dict):
            why = answer.error.message if answer.error else answer.note or answer.state.value
            note = f"the model synthesis ({final_id}) {answer.state.value}: {why}. This is a merge instead."
            merged = await anyio.to_thread.run_sync(merge, snapshots, quorum, [note])
            return merged.model_copy(update={"usage": usage})
        answered, missing = split_answers(snapshots)
        notes = (
            ["the synthesis hit its max_tokens and may be cut short"]
            if answer.stop_reason == "max_tokens"
            else []
        )
        value = cast(dict[str, Any], structured)
        return await anyio.to_thread.run_sync(
            from_structured, value, answered, missing, usage, notes, abandon_on_cancel=True
        )

    def _reusable(self, task_id: str) -> bool:
        try:
            state = self._registry.snapshot(task_id).state
        except UnknownTask:
            return False
        return state in {TaskState.QUEUED, TaskState.RUNNING, TaskState.COMPLETED}

    def _plan(
        self,
        answered: Sequence[TaskSnapshot],
        missing: Sequence[Missing],
        instructions: str | None,
        backend: Backend,
    ) -> list[PlannedTask]:
        """One task if the answers fit; else a tree: groups of answers, then merges of merges. (Runs in a
        worker thread: it only reads its arguments and the settings.)"""
        settings = self._settings
        header = _header(instructions, missing)
        # The budget is for answers: the fixed text of every synthesis prompt comes off it first.
        fixed = len(SYSTEM) + len(header) + len(_ANSWER_IN_SCHEMA) + len(_MERGE_PARTIALS)
        budget = max(settings.synthesis_input_chars - fixed, _MIN_ANSWER_BUDGET)
        pieces = [piece for snap in answered for piece in _pieces(snap, budget)]
        groups = _pack(pieces, budget)
        everyone = frozenset(s.task_id for s in answered)
        if len(groups) <= 1:
            prompt = _prompt(header, groups[0] if groups else [], len(answered))
            return [self._task(backend, 0, f"synthesis of {len(answered)} answer(s)", prompt, everyone, ())]
        planned = [
            self._task(backend, i, f"synthesis part {i + 1} of {len(groups)}",
                       _prompt(header, group, len(answered), i, len(groups)),
                       frozenset(p.snap.task_id for p in group), ())
            for i, group in enumerate(groups)
        ]  # fmt: skip
        # Each partial synthesis is at most synthesis_max_tokens long (about 4 characters a token): merge
        # as many as fit in one call, level by level, until one is left.
        fan_in = max(2, budget // (settings.synthesis_max_tokens * 4))
        level = list(range(len(planned)))
        merging = f"{header}\n\n{_MERGE_PARTIALS}\n\n{_ANSWER_IN_SCHEMA}"
        while len(level) > 1:
            upper: list[int] = []
            for start in range(0, len(level), fan_in):
                children = tuple(level[start : start + fan_in])
                if len(children) == 1:
                    upper.append(children[0])
                    continue
                known = frozenset[str]().union(*(planned[c].spec.known_sources or () for c in children))
                label = "synthesis of the parts" if len(level) <= fan_in else f"merge of parts {children}"
                upper.append(len(planned))
                planned.append(self._task(backend, len(planned), label, merging, known, children))
            level = upper
        return planned

    def _task(
        self,
        backend: Backend,
        index: int,
        label: str,
        prompt: str,
        known: frozenset[str],
        deps: tuple[int, ...],
    ) -> PlannedTask:
        settings = self._settings
        model = backend.model_for(None, settings.model)
        spec = TaskSpec(
            index=index,
            label=label,
            role="synthesis",
            task=label,
            model=model,
            backend=backend.name,
            timeout_s=settings.task_timeout_s,
            files=(),
            output_schema=SYNTHESIS_SCHEMA,
            depends_on=deps,
            known_sources=known,
        )
        request = SubagentRequest(
            model=model,
            max_tokens=settings.synthesis_max_tokens,
            system=SYSTEM,
            prompt="",  # the planned task carries it
            cache_system=False,
            output_schema=SYNTHESIS_SCHEMA,
        )
        return PlannedTask(spec, request, backend, prompt)


# --- prompts --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Piece:
    snap: TaskSnapshot
    text: str
    part: int
    parts: int


def _pieces(snap: TaskSnapshot, budget: int) -> list[_Piece]:
    """An answer, split at line breaks into pieces that each fit the budget (nothing is dropped)."""
    text = (snap.output or "").strip()
    chunks: list[str] = []
    while len(text) > budget:
        cut = text.rfind("\n", 0, budget)
        cut = cut if cut > budget // 2 else budget
        chunks.append(text[:cut])
        text = text[cut:].lstrip("\n")
    chunks.append(text)
    return [_Piece(snap, chunk, i + 1, len(chunks)) for i, chunk in enumerate(chunks)]


def _pack(pieces: Sequence[_Piece], budget: int) -> list[list[_Piece]]:
    groups: list[list[_Piece]] = []
    size = budget + 1
    for piece in pieces:
        if size + len(piece.text) > budget:
            groups.append([])
            size = 0
        groups[-1].append(piece)
        size += len(piece.text)
    return groups


def _header(instructions: str | None, missing: Sequence[Missing]) -> str:
    parts: list[str] = []
    if instructions:
        parts.append(f"Instructions for this synthesis:\n{instructions.strip()}")
    if missing:
        listed = "; ".join(f"{m.label} [{m.task_id}]: {m.reason}" for m in missing)
        parts.append(f"Missing (these tasks have no answer; name them in the summary): {listed}")
    return "\n\n".join(parts)


def _prompt(header: str, pieces: Sequence[_Piece], answered: int, group: int = 0, groups: int = 1) -> str:
    blocks: list[str] = []
    for piece in pieces:
        attrs = f'task_id="{piece.snap.task_id}" label="{_attr(piece.snap.label)}"'
        if piece.snap.role:
            attrs += f' role="{_attr(piece.snap.role)}"'
        if piece.parts > 1:
            attrs += f' part="{piece.part} of {piece.parts}"'
        blocks.append(f"<answer {attrs}>\n{piece.text}\n</answer>")
    which = (
        f" (group {group + 1} of {groups}; the other groups are synthesised separately)" if groups > 1 else ""
    )
    body = f"{answered} answer(s){which}:\n\n" + "\n\n".join(blocks) if blocks else "No task has answered."
    return "\n\n".join(p for p in (header, body, _ANSWER_IN_SCHEMA) if p)


def _attr(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


# --- from the model's answer to a Synthesis ------------------------------------------------------------


def from_structured(
    value: dict[str, Any],
    answered: Sequence[TaskSnapshot],
    missing: Sequence[Missing],
    usage: Usage,
    notes: list[str],
) -> Synthesis:
    findings = [_finding(f) for f in value["findings"]]
    conflicts = [
        Conflict(
            kind="other",
            topic=c["topic"],
            sides=[ConflictSide(**side) for side in c["sides"]],
            resolution=c["resolution"],
            reason=c["reason"],
        )
        for c in value["conflicts"]
    ]
    actions = sorted((Action(**a) for a in value["actions"]), key=lambda a: a.priority)
    summary = str(value["summary"]).strip()
    unnamed = [m for m in missing if m.task_id not in summary]  # ids, not labels: "task 1" is in "task 12"
    if unnamed:
        summary += f" No answer from: {name_missing(unnamed)}."
    title = f"Synthesis of {len(answered)} answer(s)"
    markdown = render_markdown(title, summary, findings, conflicts, actions, [], missing)
    sources = [
        Source(
            task_id=s.task_id, label=s.label, chars=len(s.output or ""), structured=s.structured is not None
        )
        for s in answered
    ]
    return Synthesis(
        mode="llm",
        summary=summary,
        findings=findings,
        conflicts=conflicts,
        actions=actions,
        missing=list(missing),
        sources=sources,
        markdown=markdown,
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
