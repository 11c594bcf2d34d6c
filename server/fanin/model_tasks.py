"""A model synthesis as tasks of the registry: one task when the answers fit the synthesis input
budget; otherwise the answers are packed into groups that fit (an answer too long for one group is split
across groups, never cut), each group is synthesised by a task, and tasks that depend on those merge
their syntheses, level by level, until a last task merges everything. Every task answers in
``SYNTHESIS_SCHEMA`` and may cite only the ids of the tasks it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..backends import Backend
from ..config.settings import Settings
from ..core.models import SubagentRequest, TaskSnapshot, TaskSpec
from ..intake.prepare import PlannedTask
from ..intake.subagent_prompt import output_format
from .model_answer import SYNTHESIS_SCHEMA
from .report import Missing

_MIN_ANSWER_BUDGET = 1_000

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


def plan_model_synthesis(
    answered: Sequence[TaskSnapshot],
    missing: Sequence[Missing],
    instructions: str | None,
    backend: Backend,
    settings: Settings,
) -> list[PlannedTask]:
    """One task if the answers fit; else a tree: groups of answers, then merges of merges, the last
    task last. (Run it in a worker thread: cutting and packing takes time in proportion to the
    answers; it only reads its arguments.)"""
    tasks = _Tasks(backend, settings, _header(instructions, missing))
    # The budget is for answers: the fixed text of every synthesis prompt comes off it first.
    fixed = len(SYSTEM) + len(tasks.header) + len(_ANSWER_IN_SCHEMA) + len(_MERGE_PARTIALS)
    budget = max(settings.synthesis_input_chars - fixed, _MIN_ANSWER_BUDGET)
    groups = _pack([piece for snap in answered for piece in _pieces(snap, budget)], budget)
    if len(groups) <= 1:
        everyone = frozenset(s.task_id for s in answered)
        prompt = _prompt(tasks.header, groups[0] if groups else [], len(answered))
        return [tasks.make(0, f"synthesis of {len(answered)} answer(s)", prompt, everyone, ())]
    planned = [
        tasks.make(i, f"synthesis part {i + 1} of {len(groups)}",
                   _prompt(tasks.header, group, len(answered), i, len(groups)),
                   frozenset(p.snap.task_id for p in group), ())
        for i, group in enumerate(groups)
    ]  # fmt: skip
    # Each partial synthesis is at most synthesis_max_tokens long (about 4 characters a token): merge
    # as many as fit in one call, level by level, until one is left.
    _add_merges(planned, tasks, fan_in=max(2, budget // (settings.synthesis_max_tokens * 4)))
    return planned


def _add_merges(planned: list[PlannedTask], tasks: _Tasks, fan_in: int) -> None:
    """Append to ``planned`` (the groups' tasks) the tasks that merge them, ``fan_in`` at a time."""
    merging = f"{tasks.header}\n\n{_MERGE_PARTIALS}\n\n{_ANSWER_IN_SCHEMA}"
    level = list(range(len(planned)))
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
            planned.append(tasks.make(len(planned), label, merging, known, children))
        level = upper


@dataclass(frozen=True, slots=True)
class _Tasks:
    """Makes the synthesis's tasks: each on ``backend``, with the header every prompt starts with."""

    backend: Backend
    settings: Settings
    header: str

    def make(
        self, index: int, label: str, prompt: str, known: frozenset[str], deps: tuple[int, ...]
    ) -> PlannedTask:
        settings = self.settings
        model = self.backend.model_for(None, settings.model)
        spec = TaskSpec(
            index=index,
            label=label,
            role="synthesis",
            task=label,
            model=model,
            backend=self.backend.name,
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
        return PlannedTask(spec, request, self.backend, prompt)


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
