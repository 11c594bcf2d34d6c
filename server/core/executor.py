"""Where and how a spawn's tasks run: the seam between the registry and what executes its tasks.

The registry registers every task in its table (``table.py``) and then hands the spawn to its executor.
The embedded executor is the ``Runner`` (``runner.py``): it runs each task in this process, in the
registry's task group, and moves the task in the table as it goes. An executor that runs tasks
elsewhere (``server/executors/temporal/``) gives the table no live parts (``prepare`` returns none):
its tasks' records then move in the store, which reads them from where they run, and a cancel of one
reaches it through ``TaskStore.request_cancel``, as for a task another server process runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import anyio.abc

from ..config.pricing import PriceTable
from ..config.settings import Settings
from ..intake.prepare import Intake
from .live import Live
from .models import RetryNotice
from .records import TaskRecord
from .table import EndHook, TaskTable


class Executor(Protocol):
    """Runs the tasks the registry registered (see the module)."""

    #: set by the registry as it closes: what is cancelled from now on is interrupted
    shutting_down: bool

    @property
    def capacity(self) -> int:
        """How many tasks it runs at once at most."""
        ...

    def task_ids(self, group_id: str, count: int) -> list[str]:
        """Fresh ids for the ``count`` tasks of a new spawn, the group ``group_id``."""
        ...

    def prepare(
        self, intake: Intake, records: Sequence[TaskRecord], outside: Sequence[TaskRecord]
    ) -> list[Live]:
        """A new spawn's tasks (``outside``: the tasks of other spawns some depend on, for a retry): the
        live part of each that runs here, for the table (none for tasks that run elsewhere)."""
        ...

    def start(self, group_id: str, lives: Sequence[Live], max_concurrency: int | None) -> None:
        """The spawn is registered: start it once it is saved (``saved``)."""

    def saved(self, group_id: str) -> None:
        """The spawn is in the store (or the store failed to take it, and said so): its tasks may go."""

    def end_hooks(self) -> tuple[EndHook, ...]:
        """What the end of a task that ran here means beyond the table, in the order the table calls them."""
        ...


#: How the registry makes its executor: from its task group, its table, the settings, the prices and
#: whom to tell of every retry.
ExecutorFactory = Callable[
    [anyio.abc.TaskGroup, TaskTable, Settings, PriceTable, Callable[[RetryNotice], None]], Executor
]
