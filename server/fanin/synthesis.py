"""Fan-in: the one synthesis use case, ``Synthesizer.synthesize``, which the ``synthesize`` tool and the
``run`` command both call.

It owns every rule of a synthesis: ``auto`` asks a model when the server's default backend can run, and
merges otherwise; a model synthesis starts only once every source task has ended (so that it is paid for
once, over every answer); a call for the same tasks and instructions picks up the model synthesis
already started, unless it failed or was cancelled; a synthesis over no answer asks no model; a model
synthesis that failed falls back to the merge and says so. Every answer carries the total usage of the
sources and the synthesis.

The merge is deterministic (``merge.py``). A model synthesis runs as tasks of the registry
(``model_tasks.py``), so it outlives no tool call, and its answer becomes a ``Synthesis`` in
``model_answer.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import anyio
import anyio.to_thread

from ..backends.roster import Roster
from ..config.settings import Settings
from ..core.callers import Caller
from ..core.errors import InvalidInput, UnknownTask
from ..core.models import TaskSnapshot, Usage
from ..core.registry import TaskRegistry
from ..core.state import TaskState
from .findings import Quorum
from .merge import merge
from .model_answer import from_structured
from .model_tasks import plan_model_synthesis
from .report import Synthesis, split_answers

_MAX_REMEMBERED = 256

Mode = Literal["auto", "llm", "merge"]
Wait = Callable[[Sequence[str]], Awaitable[None]]  #: waits for tasks as the caller sees fit


@dataclass(frozen=True, slots=True)
class SynthesisPending:
    """No model synthesis yet: ``unfinished`` of the ``sources`` tasks are still queued or running."""

    unfinished: int
    sources: int
    total_usage: Usage  #: the sources'


@dataclass(frozen=True, slots=True)
class SynthesisRunning:
    """The model synthesis runs; ``task_id`` is its last task."""

    task_id: str
    total_usage: Usage  #: the sources' and the synthesis's so far


@dataclass(frozen=True, slots=True)
class SynthesisDone:
    synthesis: Synthesis
    task_id: str | None  #: the model synthesis's last task; None for a merge
    total_usage: Usage  #: the sources' and the synthesis's


SynthesisAnswer = SynthesisPending | SynthesisRunning | SynthesisDone


#: a model synthesis's key: the principal it is for, the tasks it reads, its instructions
_Key = tuple[str, tuple[str, ...], str | None]


@dataclass(frozen=True, slots=True)
class _Job:
    final: str
    tasks: tuple[str, ...]  #: every synthesis task of the job, the final one included


class Synthesizer:
    """Synthesises tasks of a registry; remembers model syntheses so that a repeated call reuses one."""

    def __init__(self, registry: TaskRegistry, settings: Settings, backends: Roster) -> None:
        self._registry = registry
        self._settings = settings
        self._backends = backends
        self._jobs: OrderedDict[_Key, _Job] = OrderedDict()

    async def synthesize(
        self,
        task_ids: Sequence[str],
        mode: Mode = "auto",
        quorum: Quorum = "any",
        instructions: str | None = None,
        wait: Wait | None = None,
        *,
        caller: Caller,
    ) -> SynthesisAnswer:
        """The synthesis of these tasks' answers, as far as it has got.

        ``wait`` is how the caller waits for tasks (by default until they end; the tool, up to its
        ``wait_s``): first for the sources, then for the model synthesis started or picked up here.
        ``quorum`` applies to a merge of findings. ``task_ids`` are ids ``caller`` may see (as the
        registry's ``select`` returns them); a model synthesis runs as ``caller``'s tasks.

        Raises:
            InvalidInput: ``quorum`` is a number below 1.
            UnknownTask: the model synthesis picked up here has been evicted.
            RegistryClosed: a model synthesis would start while the server shuts down.
        """
        _check_quorum(quorum)
        wait = wait or self._registry.wait
        await wait(task_ids)
        usage = self._registry.usage
        if not self._asks_model(mode):
            merged = await self.merge(task_ids, quorum)
            return SynthesisDone(merged, None, usage(task_ids))
        counts = self._registry.counts(task_ids)
        if unfinished := counts.queued + counts.running:
            return SynthesisPending(unfinished, len(task_ids), usage(task_ids))
        if (nothing := await self._without_answers(task_ids)) is not None:
            return SynthesisDone(nothing, None, usage(task_ids))
        final = await self._start_model(task_ids, instructions, caller)
        await wait([final])
        return await self._read(final, task_ids, quorum, caller)

    async def merge(
        self, task_ids: Sequence[str], quorum: Quorum = "any", notes: Sequence[str] = ()
    ) -> Synthesis:
        """The deterministic merge, in a worker thread (it can be heavy), over snapshots taken here."""
        snapshots = self._registry.snapshots(task_ids)
        return await anyio.to_thread.run_sync(merge, snapshots, quorum, notes)

    def _asks_model(self, mode: Mode) -> bool:
        return mode == "llm" or (mode == "auto" and self._backends.default_usable())

    async def _without_answers(self, task_ids: Sequence[str]) -> Synthesis | None:
        """If none of these tasks has an answer, the synthesis that says so and why each has none, with no
        model call (one would be paid to read nothing); else None."""
        snapshots = self._registry.snapshots(task_ids)
        answered, _ = split_answers(snapshots)
        if answered:
            return None
        note = "no model synthesis was started: there is no answer to synthesize"
        return await anyio.to_thread.run_sync(merge, snapshots, "any", [note])

    async def _start_model(self, task_ids: Sequence[str], instructions: str | None, caller: Caller) -> str:
        """The last task of the model synthesis over these tasks: the one already started for the same
        tasks and instructions unless it failed or was cancelled, else a new one, over the answers as
        they are now."""
        # One job per principal: an operator's synthesis of someone's tasks is the operator's own.
        key = (caller.principal, tuple(task_ids), instructions)
        known = self._jobs.get(key) or await self._recall(key)
        if known is not None and self._reusable(known.final, caller):
            self._jobs[key] = known
            self._jobs.move_to_end(key)
            return known.final
        answered, missing = split_answers(self._registry.snapshots(task_ids))
        backend = self._backends.choose(None)
        planned = await anyio.to_thread.run_sync(
            plan_model_synthesis, answered, missing, instructions, backend, self._settings,
            abandon_on_cancel=True,
        )  # fmt: skip
        ids = await self._registry.spawn_planned(planned, _stored_key(key), caller=caller)
        self._jobs[key] = _Job(final=ids[-1], tasks=tuple(ids))
        while len(self._jobs) > _MAX_REMEMBERED:
            self._jobs.popitem(last=False)
        return ids[-1]

    async def _recall(self, key: _Key) -> _Job | None:
        """The job another process (or this one before a restart) started for the same key, if kept."""
        ids = await self._registry.recall_synthesis(_stored_key(key))
        return None if ids is None else _Job(final=ids[-1], tasks=ids)

    def _reusable(self, task_id: str, caller: Caller) -> bool:
        try:
            state = self._registry.snapshot(task_id, caller=caller).state
        except UnknownTask:
            return False
        return state in {TaskState.QUEUED, TaskState.RUNNING, TaskState.COMPLETED}

    def _job_tasks(self, final_id: str) -> list[str]:
        """Every task of the model synthesis whose last task is ``final_id`` (for its usage)."""
        job = next((job for job in self._jobs.values() if job.final == final_id), None)
        return list(job.tasks) if job else [final_id]

    async def _read(
        self, final_id: str, task_ids: Sequence[str], quorum: Quorum, caller: Caller
    ) -> SynthesisRunning | SynthesisDone:
        """The model synthesis: running, finished, or (if it failed) a merge with a note."""
        answer = self._registry.snapshot(final_id, caller=caller)
        job = self._job_tasks(final_id)
        total = self._registry.usage([*task_ids, *job])
        if not answer.state.terminal:
            return SynthesisRunning(final_id, total)
        usage = self._registry.usage(job)
        snapshots = self._registry.snapshots(task_ids)
        structured: Any = answer.structured
        if answer.state is not TaskState.COMPLETED or not isinstance(structured, dict):
            merged = await self.merge(task_ids, quorum, [_fell_back(answer)])
            return SynthesisDone(merged.model_copy(update={"usage": usage}), final_id, total)
        answered, missing = split_answers(snapshots)
        notes = (
            ["the synthesis hit its max_tokens and may be cut short"]
            if answer.stop_reason == "max_tokens"
            else []
        )
        value = cast(dict[str, Any], structured)
        synthesis = await anyio.to_thread.run_sync(
            from_structured, value, answered, missing, usage, notes, abandon_on_cancel=True
        )
        return SynthesisDone(synthesis, final_id, total)


def _stored_key(key: _Key) -> str:
    """A job's key as the store keeps it: a digest of the tasks and the instructions."""
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _check_quorum(quorum: Quorum) -> None:
    if isinstance(quorum, int) and quorum < 1:
        raise InvalidInput(
            f"quorum must be 'any', 'majority', 'all' or a number of tasks >= 1 (got {quorum})"
        )


def _fell_back(answer: TaskSnapshot) -> str:
    why = answer.error.message if answer.error else answer.note or answer.state.value
    return f"the model synthesis ({answer.task_id}) {answer.state.value}: {why}. This is a merge instead."
