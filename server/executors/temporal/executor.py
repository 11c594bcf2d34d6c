"""The Temporal executor: a spawn becomes a workflow's input, staged with the store, which starts the
workflow when the spawn is saved (``store.flush``). It keeps no task here: the table gets no live part,
so every read and cancel of the spawn's tasks goes through the store (see the package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import anyio.abc

from ...config.pricing import PriceTable
from ...config.settings import Settings
from ...core.errors import BackendUnavailable
from ...core.live import Live
from ...core.models import RetryNotice
from ...core.records import TaskRecord
from ...core.table import EndHook, TaskTable
from ...intake.prepare import Intake, PlannedTask
from . import codec, wire
from .store import TemporalStore

#: backends bound to this front end's client connection: no worker can run them
_HERE_ONLY = frozenset({"sampling"})


class TemporalExecutor:
    """Stages each spawn's workflow input with the store (an ``Executor``, ``core/executor.py``)."""

    def __init__(
        self,
        store: TemporalStore,
        task_group: anyio.abc.TaskGroup,
        table: TaskTable,
        settings: Settings,
        prices: PriceTable,
        on_retry: Callable[[RetryNotice], None],
    ) -> None:
        self._store = store
        self._settings = settings
        self.shutting_down = False

    @property
    def capacity(self) -> int:
        return self._settings.max_concurrency

    def task_ids(self, group_id: str, count: int) -> list[str]:
        return wire.task_ids(group_id, count)

    def prepare(
        self, intake: Intake, records: Sequence[TaskRecord], outside: Sequence[TaskRecord]
    ) -> list[Live]:
        """Stage the spawn's workflow input; no task of it runs here.

        Raises:
            BackendUnavailable: a task's backend runs only here (sampling), or it is an edit task.
        """
        answers = {
            dep.id: [dep.id, dep.spec.label, dep.output or ""] for dep in outside if dep.state.terminal
        }
        waits = {dep.id: [dep.id, dep.spec.label] for dep in outside if not dep.state.terminal}
        calls = [
            _call(record, planned, answers, waits)
            for record, planned in zip(records, intake.tasks, strict=True)
        ]
        if intake.warm_first:
            _warm_up(calls, intake.tasks)
        owner = records[0].owner if records else ""
        spawn = wire.GroupSpawn(
            records[0].group_id if records else "",
            owner,
            calls,
            intake.max_concurrency,
            intake.budget_usd,
            self._settings.synthesis_input_chars,
            wire.MAX_PENDING,
        )
        self._store.stage(spawn)
        return []

    def start(self, group_id: str, lives: Sequence[Live], max_concurrency: int | None) -> None:
        """Nothing to start here: ``store.flush`` starts the workflow."""

    def saved(self, group_id: str) -> None:
        """The workflow has started (or failed to, and the spawn said so)."""

    def end_hooks(self) -> tuple[EndHook, ...]:
        return ()  # no task ends here: the workflow keeps the budget and the dependencies


def _warm_up(calls: Sequence[wire.TaskCall], planned: Sequence[PlannedTask]) -> None:
    """As the embedded runner does: the first task of each backend and model without dependencies goes
    first, and its siblings start once its answer begins (the shared prompt prefix is in the provider's
    cache, so they read it instead of each paying to write it)."""
    leads: dict[tuple[str, str], wire.TaskCall] = {}
    for call, task in zip(calls, planned, strict=True):
        if call.depends_on or call.outside_answers or not task.backend.traits.caches_prompts:
            continue  # a dependant starts late anyway: it neither warms the cache nor waits for it
        lead = leads.setdefault((task.spec.backend, task.spec.model), call)
        if lead is call:
            call.warms = True
        else:
            call.warm_lead = lead.task_id


def _call(
    record: TaskRecord,
    planned: PlannedTask,
    answers: dict[str, list[str]],
    waits: dict[str, list[str]],
) -> wire.TaskCall:
    """The task's call; ``answers`` and ``waits``: the tasks outside the spawn it may depend on (a
    retry's), ended (the registry lets only completed ones through) and not yet ended."""
    spec = planned.spec
    if spec.backend in _HERE_ONLY or planned.request.edit:
        what = "an edit task" if planned.request.edit else f"backend {spec.backend!r}"
        raise BackendUnavailable(f"{what} cannot run with --executor temporal: workers run tasks elsewhere")
    request = replace(planned.request, prompt=planned.write_prompt())
    own = [dep for dep in record.depends_on if dep not in answers and dep not in waits]
    return wire.TaskCall(
        record.id,
        spec.label,
        spec.timeout_s,
        own,
        codec.spec_json(spec),
        codec.request_json(request),
        [answers[dep] for dep in record.depends_on if dep in answers],
        outside_waits=[waits[dep] for dep in record.depends_on if dep in waits],
    )
