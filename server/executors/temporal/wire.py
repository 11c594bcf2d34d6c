"""What travels through Temporal: the workflow's input, its view, an activity's call, heartbeat and end.

Plain dataclasses of JSON types only (Temporal's default converter writes them as JSON), so that the
workflow sandbox imports nothing else. The engine's own types (a task's spec and request) travel as JSON
strings the workflow never reads (``codec.py`` writes and reads them); secrets are never among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WORKFLOW = "FanoutGroup"
ACTIVITY = "run_subagent"
AWAIT_ACTIVITY = "await_task"  #: waits for a task of another group (``outside.py``)
OPENED = "opened"  #: the signal a cache-warming lead's activity sends once its answer begins
OWNER_ATTRIBUTE = "FanoutOwner"  #: Keyword: the principal that spawned the group
SYNTHESIS_ATTRIBUTE = "FanoutSynthesis"  #: Keyword: a model synthesis's key (a digest), on its group

BEAT_CHARS = 16_000  #: the newest characters of a running task's partial output that a heartbeat holds
#: what all of a group's heartbeats hold together at most: a front end reads them all at once (its
#: workflow's description), within gRPC's 4 MB a message; a large group's tasks each beat a shorter tail
GROUP_BEAT_CHARS = 1_500_000
MIN_BEAT_CHARS = 500


#: the most activities a group's workflow keeps pending (asked for, not yet ended): Temporal refuses a
#: workflow step that would pass its cluster's ``limit.numPendingActivities.error`` (2,000 by default),
#: and the step then fails again at every retry. The rest of the 2,000 is left to a retry's waits for
#: tasks outside it (``outside.py``).
MAX_PENDING = 1_900


def beat_chars(tasks: int) -> int:
    """The newest characters of its partial output each running task of a group of ``tasks`` beats."""
    return max(MIN_BEAT_CHARS, min(BEAT_CHARS, GROUP_BEAT_CHARS // max(1, tasks)))


def task_ids(group_id: str, count: int) -> list[str]:
    """The ids of a group's tasks: each names its group (``t-TOKEN.N`` of ``g-TOKEN``, ``.`` being in no
    token), so any front end finds a task's workflow from its id alone. Ids are not secrets: a front end
    shows a task only to its owner."""
    token = group_id.removeprefix("g-")
    return [f"t-{token}.{n}" for n in range(count)]


def group_of(task_id: str) -> str | None:
    """The group whose task ``task_id`` is (None: not an id ``task_ids`` made)."""
    token, dot, n = task_id.removeprefix("t-").rpartition(".")
    return f"g-{token}" if task_id.startswith("t-") and dot and token and n.isdigit() else None


def _no_answers() -> list[list[str]]:
    return []


def _no_ids() -> list[str]:
    return []


@dataclass
class Spend:
    """Tokens and cost, as ``core.records.Spend``; ``cost_usd`` None once any call's cost is unknown."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float | None = 0.0


@dataclass
class TaskCall:
    """One task of a spawn, as the workflow gets it."""

    task_id: str
    label: str
    timeout_s: float
    depends_on: list[str]
    spec_json: str  #: its ``TaskSpec``
    request_json: str  #: its ``SubagentRequest``, the prompt written (its dependencies' answers not yet)
    #: answers of tasks outside the spawn it depends on (a retry's), as (task id, label, answer)
    outside_answers: list[list[str]] = field(default_factory=_no_answers)
    #: tasks outside the spawn it depends on that had not ended, as (task id, label): awaited, then their
    #: answers go with the others
    outside_waits: list[list[str]] = field(default_factory=_no_answers)
    #: warm-first: the task whose answer must begin (the shared prompt prefix cached) before this starts
    warm_lead: str | None = None
    warms: bool = False  #: it is such a lead: its activity signals ``OPENED`` once its answer begins


@dataclass
class GroupSpawn:
    """A workflow's input: one spawn."""

    group_id: str
    owner: str
    tasks: list[TaskCall]
    max_concurrency: int | None = None
    budget_usd: float | None = None
    dependency_chars: int = 400_000  #: characters of dependencies' answers one prompt gets
    max_pending: int = MAX_PENDING  #: the most of its tasks' activities pending at once


@dataclass
class SubagentCall:
    """An activity's input: one task's call, its dependencies' answers given."""

    task_id: str
    group_id: str
    label: str
    spec_json: str
    request_json: str
    answers: list[list[str]]  #: (task id, label, answer) of each task it depends on, all completed
    dependency_chars: int
    warms: bool = False  #: signal the workflow ``OPENED`` with the task id once the answer begins
    beat_chars: int = BEAT_CHARS  #: the newest characters of the partial output a heartbeat holds


@dataclass
class Beat:
    """What a running activity heartbeats: how far its task has come."""

    text: str | None = None  #: the newest ``beat_chars`` characters of the answer so far
    note: str | None = None
    attempts: int = 1
    model: str | None = None
    spend: Spend = field(default_factory=Spend)


@dataclass
class TaskEnd:
    """How a task ended, for the workflow (an activity's result, or the workflow's own decision)."""

    state: str  #: a ``TaskState`` value
    output: str | None = None
    structured_json: str | None = None
    stop_reason: str | None = None
    model: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    note: str | None = None
    attempts: int = 0
    spend: Spend = field(default_factory=Spend)


@dataclass
class TaskView:
    """One task as the workflow holds it; times are the wall clock (``time.time()``)."""

    task_id: str
    state: str
    started_at: float | None = None
    ended_at: float | None = None
    end: TaskEnd | None = None
    spec_json: str | None = None  #: only when the view was asked with its specs
    depends_on: list[str] = field(default_factory=_no_ids)


@dataclass
class ViewAsk:
    """What a ``view`` query asks for: the tasks' specs (a front end that has not seen the group), and
    only the tasks that have not ended or ended after the first ``ended_seen`` ends (a front end
    already holds those: a whole view each tick would carry every answer again, and past Temporal's
    payload limits once a group has many long ones)."""

    with_specs: bool = False
    ended_seen: int = 0


@dataclass
class GroupView:
    """The workflow's ``view`` query (the tasks ``ViewAsk`` asked for), and its result (all of them)."""

    group_id: str
    owner: str
    budget_usd: float | None
    tasks: list[TaskView]
    ended: int = 0  #: how many of the group's tasks have ended: the next ask's ``ended_seen``


@dataclass
class CancelRequest:
    """The ``cancel`` signal: tasks of the group to cancel, and why."""

    task_ids: list[str]
    reason: str
