"""Spawning: from a request, or a retry's plan, to registered tasks whose runners are starting.

The spawner checks the server's limits (unfinished tasks, and the bytes they hold) and the caller's
(``quotas.py``) before the intake reads the files and again after, mints the ids, makes the records
(owned by the caller, each with the ids of the tasks it depends on, and for a retry the id it runs
again) and gives their live parts to the table and the runner. The registry's ``spawn``, ``retry``
and ``spawn_planned`` are this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..backends import Backend
from ..backends.roster import Roster
from ..config.pricing import PriceTable
from ..config.settings import Settings
from ..intake.files import FileReader
from ..intake.prepare import Intake, PlannedTask, prepare, queued_bytes_hint
from ..intake.requests import SpawnRequest
from .callers import Caller
from .errors import InvalidInput, RegistryClosed
from .executor import Executor
from .quotas import Quotas
from .records import GroupRecord, TaskRecord, new_id
from .retries import RetryPlan
from .table import TaskTable


class Spawner:
    """Starts the registry's spawns. ``closed``: refuse every new one (the server is shutting down)."""

    def __init__(
        self,
        settings: Settings,
        backends: Roster,
        prices: PriceTable,
        files: FileReader,
        table: TaskTable,
        runner: Executor,
        quotas: Quotas,
    ) -> None:
        self._settings = settings
        self._backends = backends
        self._prices = prices
        self._reader = files
        self._table = table
        self._runner = runner
        self._quotas = quotas
        self.closed = False

    async def spawn(
        self,
        request: SpawnRequest,
        extra_backends: Mapping[str, Backend] | None,
        caller: Caller,
        retry: RetryPlan | None = None,
    ) -> tuple[GroupRecord, list[TaskRecord], list[str]]:
        """Check, prepare and register a spawn (a retry's too) for ``caller``; its group, records and
        warnings.

        Raises:
            InvalidInput, LimitReached, BackendUnavailable, RegistryClosed: see ``TaskRegistry.spawn``.
        """
        self._check_accepting(len(request.tasks))
        self._quotas.check(caller, len(request.tasks))
        roster = self._backends.with_extra(extra_backends or {})
        room = self._settings.max_queued_bytes - self._table.held_bytes
        intake = await prepare(request, self._settings, self._reader, roster, room)
        self._check_accepting(len(intake.tasks))  # the file reads awaited: check again
        self._quotas.check(caller, len(intake.tasks))
        self._check_room(intake)
        if intake.budget_usd is not None:
            unpriced = sorted(
                {m for p in intake.tasks if (m := p.spec.model) and self._prices.price(m) is None}
            )
            if unpriced:
                intake.warnings.append(
                    f"budget_usd counts only priced calls; the price of {', '.join(unpriced)} is unknown, so "
                    "their cost is not counted against it (add it with --prices)."
                )
        group, records = self._register(intake, _kept(request), caller, retry)
        self._quotas.spawned(caller)
        return group, records, intake.warnings

    def spawn_planned(self, planned: Sequence[PlannedTask], caller: Caller) -> GroupRecord:
        """Start tasks the engine planned itself (a synthesis, for ``caller``) as a group of their own;
        the group. Only the server's limits apply: the caller asked for it by name."""
        self._check_accepting(len(planned))
        intake = Intake(list(planned), warm_first=False, max_concurrency=None, warnings=[])
        group, _ = self._register(intake, None, caller)
        return group

    def _check_accepting(self, count: int) -> None:
        if self.closed:
            raise RegistryClosed("the server is shutting down and starts no new tasks")
        limit, unfinished = self._settings.max_unfinished, self._table.unfinished
        if unfinished + count > limit:
            raise InvalidInput(
                f"{unfinished} tasks are still queued or running and this spawn would pass the "
                f"server's limit of {limit} unfinished tasks; collect or cancel some first."
            )

    def _check_room(self, intake: Intake) -> None:
        spawn = intake.shared_bytes + sum(planned.held_bytes for planned in intake.tasks)
        limit, held = self._settings.max_queued_bytes, self._table.held_bytes
        if held + spawn > limit:
            raise InvalidInput(
                f"this spawn's tasks, shared context and files take {spawn} bytes, and unfinished tasks "
                f"already hold {held}. {queued_bytes_hint(self._settings)}"
            )

    def _register(
        self, intake: Intake, request: SpawnRequest | None, caller: Caller, retry: RetryPlan | None = None
    ) -> tuple[GroupRecord, list[TaskRecord]]:
        group_id, owner = new_id("g"), caller.principal
        ids = self._runner.task_ids(group_id, len(intake.tasks))
        records = _new_records(group_id, owner, intake, ids, retry)
        group = GroupRecord(
            group_id,
            [record.id for record in records],
            owner,
            request=request,
            budget_usd=intake.budget_usd,
            shared_bytes=intake.shared_bytes,
        )
        outside = [dep for deps in retry.outside for dep in deps] if retry is not None else []
        lives = self._runner.prepare(intake, records, outside)
        self._table.add(group, records, lives)
        self._runner.start(group_id, lives, intake.max_concurrency)
        return group, records


def _new_records(
    group_id: str, owner: str, intake: Intake, ids: Sequence[str], retry: RetryPlan | None
) -> list[TaskRecord]:
    """A spawn's records: each with the ids of the tasks it depends on, and for a retry the id it runs
    again and the tasks outside the spawn it still depends on."""
    records: list[TaskRecord] = []
    for n, planned in enumerate(intake.tasks):
        own = planned.spec.depends_on
        depends_on = tuple(ids[i] for i in own) if own else ()
        retry_of = None
        if retry is not None:
            depends_on += tuple(dep.id for dep in retry.outside[n])
            retry_of = retry.retry_of[n]
        records.append(TaskRecord(ids[n], group_id, planned.spec, owner, depends_on, retry_of))
    return records


def _kept(request: SpawnRequest) -> SpawnRequest:
    """The spawn request itself, to keep on its group: a plan's own fields (its synthesis) left out."""
    if type(request) is SpawnRequest:
        return request
    return SpawnRequest.model_construct(
        **{name: getattr(request, name) for name in SpawnRequest.model_fields}
    )
