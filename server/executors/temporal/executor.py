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
        for index, lead in enumerate(intake.warm_leads([record.depends_on for record in records])):
            if lead == index:
                calls[index].warms = True  # its activity signals the workflow once its answer begins
            elif lead is not None:
                calls[index].warm_lead = calls[lead].task_id
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
