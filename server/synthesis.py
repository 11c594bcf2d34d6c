"""Fan-in: merging the answers of a spawn into one.

Two ways, both citing task ids and both listing the tasks that have no answer (``missing``), so that
nothing is dropped silently:

* ``merge`` is deterministic and needs no model: answers grouped by task, in spawn order, with parts
  that several tasks said word for word collapsed into one that cites them all.
* ``llm`` runs one more subagent (a task of its own, so a long synthesis outlives no tool call) that
  merges related findings, resolves conflicts, prioritises and ends with an actionable summary.
  If that subagent fails, the result falls back to ``merge`` and says so.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from fanout_mcp.server.budget import fair_shares
from fanout_mcp.server.errors import UnknownTask
from fanout_mcp.server.intake import PlannedTask
from fanout_mcp.server.models import SubagentRequest, TaskSnapshot, TaskSpec, Usage
from fanout_mcp.server.registry import TaskRegistry
from fanout_mcp.server.state import TaskState

Mode = Literal["llm", "merge"]

# Answers longer than this in total are cut (each to a fair share) before they go to the model.
MAX_SYNTHESIS_INPUT_CHARS: Final = 400_000
_MAX_REMEMBERED = 256

SYSTEM: Final = """\
You merge the answers of subagents that worked in parallel on parts of one job into a single answer.
Each answer is given inside <answer task_id="..." label="..."> tags. Work in these steps:
1. Merge related findings: a point several answers make appears once, citing every task that made it.
2. Resolve conflicts between recommendations: show each side with its task ids, then say which you
   recommend and why.
3. Prioritise by severity or importance, most important first.
4. End with an actionable summary.
After every point, cite its sources as task ids in square brackets, e.g. [t-abc, t-def]. Do not add
findings no answer supports. If some tasks are listed as missing, say what their absence leaves open.
Answer in markdown with exactly these sections, in this order:
## Summary
## Findings
## Conflicts
## Actions
Write "None." under a section that has nothing."""


class Source(BaseModel):
    """A task whose answer went into the synthesis."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    label: str
    chars: int
    cut: bool = False


class Missing(BaseModel):
    """A task with no answer in the synthesis, and why."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    label: str
    state: TaskState
    reason: str


class Synthesis(BaseModel):
    """One merged answer. ``usage`` is what the synthesis itself cost (nothing for a merge)."""

    model_config = ConfigDict(frozen=True)

    mode: Mode
    summary: str
    markdown: str
    sources: list[Source]
    missing: list[Missing]
    usage: Usage
    notes: list[str] = []


@dataclass(frozen=True, slots=True)
class _Part:
    text: str
    key: str


class Synthesizer:
    """Builds syntheses over a registry; remembers running model syntheses so a repeated call reuses one."""

    def __init__(self, registry: TaskRegistry) -> None:
        self._registry = registry
        self._jobs: OrderedDict[tuple[object, ...], str] = OrderedDict()

    def merge(self, task_ids: Sequence[str], notes: Sequence[str] = ()) -> Synthesis:
        answered, missing = _split(self._registry.snapshots(task_ids))
        return _merge(answered, missing, list(notes))

    async def start_llm(self, task_ids: Sequence[str], instructions: str | None) -> str:
        """The id of a synthesis task over these tasks: the one already started for the same tasks and
        instructions unless it failed or was cancelled, else a new one. Start it once the tasks have
        ended: their answers are read now."""
        snapshots = self._registry.snapshots(task_ids)
        key = (tuple(task_ids), instructions)
        known = self._jobs.get(key)
        if known is not None and _reusable(self._registry, known):
            self._jobs.move_to_end(key)
            return known
        answered, missing = _split(snapshots)
        settings = self._registry.settings
        prompt, _ = _llm_prompt(answered, missing, instructions)
        planned = PlannedTask(
            TaskSpec(
                index=0,
                label=f"synthesis of {len(snapshots)} tasks",
                role="synthesis",
                task="synthesize",
                model=settings.model,
                backend=self._registry.backend.name,
                timeout_s=settings.task_timeout_s,
                files=(),
            ),
            SubagentRequest(
                model=settings.model,
                max_tokens=settings.synthesis_max_tokens,
                system=SYSTEM,
                prompt=prompt,
                cache_system=False,
            ),
        )
        task_id = await self._registry.spawn_one(planned)
        self._jobs[key] = task_id
        while len(self._jobs) > _MAX_REMEMBERED:
            self._jobs.popitem(last=False)
        return task_id

    def result(self, synthesis_id: str, task_ids: Sequence[str]) -> Synthesis | None:
        """The finished synthesis, ``None`` while it runs, or a merge if it failed."""
        answer = self._registry.snapshot(synthesis_id)
        if not answer.state.terminal:
            return None
        answered, missing = _split(self._registry.snapshots(task_ids))
        if answer.state is not TaskState.COMPLETED or not answer.output:
            why = answer.error.message if answer.error else answer.note or answer.state.value
            note = f"model synthesis {synthesis_id} {answer.state.value} ({why}); this is a merge instead"
            merged = _merge(answered, missing, [note])
            return merged.model_copy(update={"usage": merged.usage + answer.usage})
        _, cut = _llm_prompt(answered, missing, None)
        notes = [f"the answer of task {task_id} was cut to fit the synthesis input" for task_id in cut]
        if answer.stop_reason == "max_tokens":
            notes.append("the synthesis hit its max_tokens and is cut short")
        return Synthesis(
            mode="llm",
            summary=_summary_section(answer.output),
            markdown=answer.output,
            sources=_sources(answered, cut),
            missing=missing,
            usage=answer.usage,
            notes=notes,
        )


def _reusable(registry: TaskRegistry, task_id: str) -> bool:
    try:
        state = registry.snapshot(task_id).state
    except UnknownTask:
        return False
    return state in {TaskState.QUEUED, TaskState.RUNNING, TaskState.COMPLETED}


def _split(snapshots: Sequence[TaskSnapshot]) -> tuple[list[TaskSnapshot], list[Missing]]:
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
    return f"still {snap.state.value}; call synthesize again later to include it"


def _sources(answered: Sequence[TaskSnapshot], cut: Sequence[str] = ()) -> list[Source]:
    return [
        Source(task_id=s.task_id, label=s.label, chars=len(s.output or ""), cut=s.task_id in cut)
        for s in answered
    ]


# --- merge ---------------------------------------------------------------------------------------------

_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def _parts(text: str) -> list[_Part]:
    """Paragraphs, and the items of a paragraph that is a plain list."""
    parts: list[_Part] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in block.splitlines() if line.strip()]
        items = lines if len(lines) > 1 and all(_BULLET.match(line) for line in lines) else [block.strip()]
        parts.extend(_Part(item.rstrip(), _normalise(item)) for item in items if item.strip())
    return parts


def _normalise(text: str) -> str:
    text = _BULLET.sub("", text)
    return re.sub(r"\s+", " ", text).strip().rstrip(".;:").lower()


def _merge(answered: Sequence[TaskSnapshot], missing: Sequence[Missing], notes: list[str]) -> Synthesis:
    owners: dict[str, list[str]] = {}  # normalised part -> ids of the tasks that said it
    per_task: list[tuple[TaskSnapshot, list[_Part]]] = []
    for snap in answered:
        kept: list[_Part] = []
        for part in _parts(snap.output or ""):
            cited = owners.get(part.key)
            if cited is None:
                owners[part.key] = [snap.task_id]
                kept.append(part)
            elif snap.task_id not in cited:
                cited.append(snap.task_id)
        per_task.append((snap, kept))
    lines = [f"# Merged answers of {len(answered)} task(s)"]
    for snap, kept in per_task:
        lines.append(f"\n## {snap.label} (`{snap.task_id}`)\n")
        for part in kept:
            others = owners[part.key][1:]
            also = f" _(also: {', '.join(f'`{o}`' for o in others)})_" if others else ""
            lines.append(f"{part.text}{also}\n")
        if not kept:
            lines.append("_(everything in this answer is already above)_\n")
    lines += _missing_lines(missing)
    duplicates = sum(len(ids) - 1 for ids in owners.values())
    summary = (
        f"Merged {len(answered)} answer(s) without a model: {len(owners)} distinct part(s), "
        f"{duplicates} duplicate part(s) collapsed, each part cited by task id."
    )
    if missing:
        summary += f" {len(missing)} task(s) have no answer: {_name_missing(missing)}."
    return Synthesis(
        mode="merge",
        summary=summary,
        markdown="\n".join(lines).strip() + "\n",
        sources=_sources(answered),
        missing=list(missing),
        usage=Usage(),
        notes=notes,
    )


def _missing_lines(missing: Sequence[Missing]) -> list[str]:
    if not missing:
        return []
    lines = ["\n## Missing\n"]
    lines += [f"- {m.label} (`{m.task_id}`), {m.state.value}: {m.reason}" for m in missing]
    return lines


def _name_missing(missing: Sequence[Missing]) -> str:
    return ", ".join(f"{m.label} ({m.state.value})" for m in missing)


# --- model synthesis -----------------------------------------------------------------------------------


def _llm_prompt(
    answered: Sequence[TaskSnapshot], missing: Sequence[Missing], instructions: str | None
) -> tuple[str, list[str]]:
    """The synthesis prompt, and the ids of the tasks whose answers had to be cut to fit."""
    shares = fair_shares([len(s.output or "") for s in answered], MAX_SYNTHESIS_INPUT_CHARS)
    cut: list[str] = []
    blocks: list[str] = []
    for snap, share in zip(answered, shares, strict=True):
        text = snap.output or ""
        attrs = f'task_id="{snap.task_id}" label="{_attr(snap.label)}"'
        if snap.role:
            attrs += f' role="{_attr(snap.role)}"'
        if len(text) > share:
            cut.append(snap.task_id)
            attrs += f' note="cut: the first {share} of {len(text)} characters"'
            text = text[:share]
        blocks.append(f"<answer {attrs}>\n{text.strip()}\n</answer>")
    parts: list[str] = []
    if instructions:
        parts.append(f"Instructions for this synthesis:\n{instructions.strip()}")
    parts.append(
        f"{len(answered)} answer(s):\n\n" + "\n\n".join(blocks) if blocks else "No task has answered."
    )
    if missing:
        parts.append(
            "Missing (no answer): " + "; ".join(f"{m.label} [{m.task_id}]: {m.reason}" for m in missing)
        )
    return "\n\n".join(parts), cut


def _attr(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


def _summary_section(markdown: str) -> str:
    match = re.search(
        r"^##\s*Summary\s*$(.*?)(?=^##\s|\Z)", markdown, re.MULTILINE | re.DOTALL | re.IGNORECASE
    )
    if match and match.group(1).strip():
        return match.group(1).strip()
    return markdown.strip().split("\n\n", 1)[0]
