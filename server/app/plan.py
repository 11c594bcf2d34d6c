"""Plan files: a fan-out described in JSON, run start to finish through the same engine.

A plan is a ``SpawnRequest`` (the spawn contract: ``spawn_parallel``'s arguments, which a test pins to
it; a ``wait_s`` is accepted and ignored) plus an optional ``synthesis``:
``{"mode": "auto" | "llm" | "merge" | "none", "instructions": "..."}``, and for edit tasks an optional
``apply``: ``{"dry_run": true | false}``.

A run is ``start_plan`` (the spawn) then ``finish_plan`` (every task's end, the synthesis, then for edit
tasks their conflict matrix and, if the plan asks, the apply of the completed ones' changes); a run
stopped part-way (Ctrl-C) ends with ``stop_plan``, which never waits on a provider again: it cancels
what is unfinished and gives what finished, with the merge of it where the plan asks for a synthesis
that a merge can give. The tasks are the local user's (``LOCAL``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..changes.models import ApplyOutcome, ChangesOverview
from ..core.callers import Caller
from ..core.errors import InvalidInput
from ..core.models import SpawnReceipt, TaskSnapshot
from ..fanin.report import Synthesis
from ..fanin.synthesis import SynthesisDone
from ..intake.requests import SpawnRequest
from .runtime import Runtime

#: Who runs a plan: the user at the terminal, the principal the stdio server would name too.
LOCAL: Final = Caller.local()


class SynthesisOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["auto", "llm", "merge", "none"] = "auto"
    instructions: str | None = None


class ApplyOptions(BaseModel):
    """Apply the completed edit tasks' changes to the working tree, in spawn order, as apply_changes
    does (a dry run unless ``dry_run`` is false)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dry_run: bool = True


class Plan(SpawnRequest):
    """A fan-out to run from a file: the spawn itself, then its synthesis (and its edit tasks' apply)."""

    wait_s: float | None = None  # accepted so a spawn_parallel call can be pasted as is; unused
    synthesis: SynthesisOptions = SynthesisOptions()
    apply: ApplyOptions | None = None


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    receipt: SpawnReceipt
    tasks: list[TaskSnapshot]
    synthesis: Synthesis | None
    stopped: str | None = None  #: why the run was stopped part-way (``stop_plan``), or None
    changes: ChangesOverview | None = None  #: the edit tasks' conflict matrix and apply preview
    applied: ApplyOutcome | None = None  #: what the plan's ``apply`` did (or would do)


def load_plan(path: Path) -> Plan:
    """Read and check a plan file.

    Raises:
        InvalidInput: the file is missing, is not JSON, or does not have the plan's shape.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read plan {str(path)!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"plan {str(path)!r} is not valid JSON: {exc}") from None
    try:
        return Plan.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'plan'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"plan {str(path)!r} is not a valid plan: {problems}") from None


async def run_plan(
    runtime: Runtime, plan: Plan, on_finish: Callable[[TaskSnapshot], Awaitable[None]] | None = None
) -> PlanOutcome:
    """``start_plan`` then ``finish_plan``.

    Raises:
        InvalidInput, BackendUnavailable: as ``TaskRegistry.spawn``.
    """
    return await finish_plan(runtime, plan, await start_plan(runtime, plan), on_finish)


async def start_plan(runtime: Runtime, plan: Plan) -> SpawnReceipt:
    """Spawn the plan's tasks.

    Raises:
        InvalidInput, BackendUnavailable: as ``TaskRegistry.spawn``.
    """
    return await runtime.registry.spawn(plan, caller=LOCAL)


async def finish_plan(
    runtime: Runtime,
    plan: Plan,
    receipt: SpawnReceipt,
    on_finish: Callable[[TaskSnapshot], Awaitable[None]] | None = None,
) -> PlanOutcome:
    """Wait for every task of the spawn (``on_finish`` hears of each as it ends), then synthesise."""
    registry = runtime.registry
    ids = [t.task_id for t in receipt.tasks]
    place = {task_id: n for n, task_id in enumerate(ids)}
    reported: set[str] = set()

    async def report(ended: Sequence[str]) -> None:
        """Tell of each of ``ended`` once, in spawn order (a look at those only: a plan of thousands
        of tasks is not read whole at every end)."""
        for snap in registry.snapshots(sorted(ended, key=place.__getitem__)):
            if snap.state.terminal and snap.task_id not in reported:
                reported.add(snap.task_id)
                if on_finish is not None:
                    await on_finish(snap)

    await report(ids)  # those that ended already
    await registry.wait(ids, on_change=report)
    await report(ids)  # those that ended before the wait began to look
    synthesis = await _synthesize(runtime, ids, plan.synthesis)
    tasks = registry.snapshots(ids)
    changes, applied = await _changes(runtime, plan, tasks)
    return PlanOutcome(receipt, tasks, synthesis, changes=changes, applied=applied)


async def stop_plan(runtime: Runtime, plan: Plan, receipt: SpawnReceipt, reason: str) -> PlanOutcome:
    """Cancel every unfinished task of the spawn, wait for them to end (an agent CLI gets its grace),
    and give what finished.

    The synthesis is the merge of the completed answers when the plan asks for ``merge`` or ``auto``
    (``auto`` would call a model where one can run: a stopped run calls none), and None for ``llm``.
    """
    registry = runtime.registry
    ids = [t.task_id for t in receipt.tasks]
    registry.cancel(ids, reason, caller=LOCAL)
    await registry.wait(ids)
    synthesis = None
    if plan.synthesis.mode in ("merge", "auto"):
        why = [f"{reason}: merged without a model call"] if plan.synthesis.mode == "auto" else []
        synthesis = await runtime.synthesizer.merge(ids, notes=why)
    return PlanOutcome(receipt, registry.snapshots(ids), synthesis, stopped=reason)


async def _changes(
    runtime: Runtime, plan: Plan, tasks: list[TaskSnapshot]
) -> tuple[ChangesOverview | None, ApplyOutcome | None]:
    """The edit tasks' conflict matrix (None: there are none), and the apply the plan asks for: of the
    completed tasks' change sets only (a failed or cancelled task's partial work is not applied)."""
    changes = await runtime.changes.overview([s.task_id for s in tasks])
    if changes is None or plan.apply is None:
        return changes, None
    completed = [s.task_id for s in tasks if s.state == "completed"]
    edits = list(await runtime.changes.records(completed))
    return changes, await runtime.changes.apply(edits, plan.apply.dry_run, caller=LOCAL)


async def _synthesize(runtime: Runtime, ids: list[str], options: SynthesisOptions) -> Synthesis | None:
    if options.mode == "none":
        return None
    answer = await runtime.synthesizer.synthesize(
        ids, options.mode, instructions=options.instructions, caller=LOCAL
    )
    assert isinstance(answer, SynthesisDone)  # the tasks have ended, and it waits for the synthesis
    return answer.synthesis
