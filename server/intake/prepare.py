"""Turning a ``SpawnRequest`` into resolved task specs and prompts, or a clear refusal.

Everything a caller can get wrong is caught here, before any task exists, with a message that says
what to do instead. What is allowed but suspicious (tasks sharing files, identical tasks, a file cut to
size) comes back as warnings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ..backends import Backend
from ..backends.roster import Roster
from ..changes.intake import check_edit_backends, edit_flags, with_edits
from ..changes.overlap import overlap_warnings
from ..config.settings import Settings
from ..core.errors import BackendUnavailable, InvalidInput
from ..core.models import SubagentRequest, TaskSpec
from .answer_schemas import resolve_schema
from .dependencies import resolve_dependencies
from .files import FileReader, FileText
from .requests import SpawnRequest, TaskRequest, default_label, task_name
from .spawn_warnings import spawn_warnings
from .subagent_prompt import TaskPrompt, build_system, estimate_tokens


@dataclass(frozen=True, slots=True)
class PlannedTask:
    spec: TaskSpec
    request: SubagentRequest  #: everything a backend needs but the prompt ("" here): see ``prompt``
    backend: Backend  #: the one named by ``spec.backend`` (a spawn's own backends are in no roster)
    prompt: TaskPrompt | str  #: the task's prompt, or how to write it when the task starts

    def write_prompt(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt.write()

    @property
    def held_bytes(self) -> int:
        """About what the task holds until it ends, apart from what its whole spawn shares."""
        return len(self.prompt) if isinstance(self.prompt, str) else self.prompt.own_bytes()


@dataclass(frozen=True, slots=True)
class Intake:
    """A spawn, ready to register."""

    tasks: list[PlannedTask]
    warm_first: bool  #: start one task per model first so its siblings read the prompt cache
    max_concurrency: int | None
    warnings: list[str]
    budget_usd: float | None = None
    shared_bytes: int = 0  #: what the spawn's tasks share while any is unfinished: shared context, files

    def warm_leads(self, depends_on: Sequence[Sequence[str]]) -> list[int | None]:
        """Warm-first, the rule every executor follows: for each task (``depends_on``: the ids each
        depends on), the index of the task whose answer must begin before it starts (its own: it is
        that lead), or None (it takes no part). The first task of each backend and model leads; its
        siblings then read the shared prompt prefix from the provider's cache instead of each paying to
        write it. A dependant starts late anyway: it neither leads nor waits."""
        leads: dict[tuple[str, str], int] = {}
        chosen: list[int | None] = []
        for index, (task, deps) in enumerate(zip(self.tasks, depends_on, strict=True)):
            warms = self.warm_first and not deps and task.backend.traits.caches_prompts
            chosen.append(leads.setdefault((task.spec.backend, task.spec.model), index) if warms else None)
        return chosen


async def prepare(
    request: SpawnRequest,
    settings: Settings,
    reader: FileReader,
    roster: Roster,
    room_bytes: int | None = None,
) -> Intake:
    """Validate a spawn, choose each task's backend and read its files (in a worker thread, each file
    once; refused unread if they take more than ``room_bytes``, by default the server's whole
    ``max_queued_bytes``). Prompts are written when tasks start.

    Raises:
        InvalidInput: the message names the argument and the fix.
        BackendUnavailable: a task's backend cannot run here; the message says what to configure.
    """
    warnings: list[str] = []
    _check_size(request, settings)
    backends = _choose_backends(request, roster)
    _check_tools(request, backends, warnings)
    check_edit_backends(request, backends)
    _check_cwd_backends(request.tasks, backends, edit_flags(request))
    max_concurrency = _check_concurrency(request.max_concurrency, settings, warnings)
    files: dict[str, FileText] = {}
    if any(task.files for task in request.tasks):
        room = settings.max_queued_bytes if room_bytes is None else room_bytes
        files = await anyio.to_thread.run_sync(_load_files, request.tasks, reader, settings, room)
    cwds: list[Path | None] = [None] * len(request.tasks)
    if any(task.cwd is not None for task in request.tasks):
        cwds = await anyio.to_thread.run_sync(_resolve_cwds, request.tasks, reader)
    depends = resolve_dependencies(request.tasks)
    schemas = await anyio.to_thread.run_sync(_resolve_schemas, request, abandon_on_cancel=True)
    system = build_system(request.shared_context)
    cache = bool(request.shared_context) and estimate_tokens(system) >= settings.cache_min_tokens
    planned = [
        _plan(i, task, files, system, cache, settings, backends[i], schemas[i], depends[i], cwds[i])
        for i, task in enumerate(_with_spawn_tools(request, backends))
    ]
    planned = await with_edits(request, planned, cwds, settings)
    warnings += await overlap_warnings(request.tasks, planned)
    warnings = spawn_warnings(warnings, request.tasks, files)
    budget = _check_budget(request.budget_usd)
    warm = cache and len(planned) > 1 and any(b.traits.caches_prompts for b in backends)
    shared = len(system) + sum({file.real: file.shown for file in files.values()}.values())
    return Intake(planned, warm, max_concurrency, warnings, budget, shared)


def _with_spawn_tools(request: SpawnRequest, backends: Sequence[Backend]) -> list[TaskRequest]:
    """The tasks with the spawn's tools given to each that has none of its own and can run them."""
    if not request.tools:
        return list(request.tasks)
    tools = request.tools
    return [
        task.model_copy(update={"tools": tools})
        if task.tools is None and backend.traits.offers_tools
        else task
        for task, backend in zip(request.tasks, backends, strict=True)
    ]


def _check_tools(request: SpawnRequest, backends: Sequence[Backend], warnings: list[str]) -> None:
    """Refuse a task that asks for tools its backend does not run; the spawn's tools go where they can."""
    without: list[str] = []
    for index, (task, backend) in enumerate(zip(request.tasks, backends, strict=True)):
        if backend.traits.offers_tools:
            continue
        if task.tools:
            raise InvalidInput(
                f"task {index + 1} ({task_name(task, index)}) asks for tools, which backend {backend.name!r} "
                "does not run: give it backend 'anthropic', or leave tools out (the claude and codex CLIs "
                "look around their working directory on their own)."
            )
        if request.tools and task.tools is None:
            without.append(f"{index + 1} ({backend.name})")
    if without and len(without) == len(request.tasks):
        raise InvalidInput(
            "the spawn asks for tools, but no task runs on a backend that offers them: give the tasks "
            "backend 'anthropic', or leave tools out."
        )
    if without:
        warnings.append(
            f"tasks {', '.join(without[:10])}{' ...' if len(without) > 10 else ''} run without the "
            "spawn's tools: their backends do not run them."
        )


def _check_cwd_backends(tasks: Sequence[TaskRequest], backends: Sequence[Backend], edits: list[bool]) -> None:
    """Refuse a ``cwd`` for a backend that runs in no directory: ignored, it would mislead the caller. (An
    edit task's cwd names its repository, whatever its backend.)"""
    for index, (task, backend, edit) in enumerate(zip(tasks, backends, edits, strict=True)):
        if task.cwd is not None and not backend.traits.runs_in_directory and not edit:
            raise InvalidInput(
                f"task {index + 1} ({task_name(task, index)}) sets cwd, but backend {backend.name!r} runs in "
                "no working directory: only agent CLIs (claude, codex, configured commands) do. Give it such "
                "a backend, or leave cwd out and name the files it needs in files."
            )


def _resolve_cwds(tasks: Sequence[TaskRequest], reader: FileReader) -> list[Path | None]:
    """Each task's working directory, checked to be a directory inside the roots (in a worker thread)."""
    resolved: list[Path | None] = []
    checked: dict[str, Path] = {}  # each directory checked once, however many tasks name it
    for index, task in enumerate(tasks):
        if task.cwd is None:
            resolved.append(None)
            continue
        try:
            if task.cwd not in checked:
                checked[task.cwd] = reader.check_directory(task.cwd)
            resolved.append(checked[task.cwd])
        except InvalidInput as exc:
            raise InvalidInput(
                f"task {index + 1} ({task_name(task, index)}) cwd: {str(exc).rstrip('.')}. Leave cwd out to "
                "run in the command's own directory, else the first root."
            ) from None
    return resolved


def _choose_backends(request: SpawnRequest, roster: Roster) -> list[Backend]:
    chosen: dict[str | None, Backend] = {}  # one lookup per name, however many tasks give it
    backends: list[Backend] = []
    for index, task in enumerate(request.tasks):
        name = task.backend or request.backend
        if name not in chosen:
            try:
                chosen[name] = roster.choose(name)
            except InvalidInput as exc:
                raise InvalidInput(f"{_where_backend(request, index, task)}: {exc}") from None
            except BackendUnavailable as exc:
                raise BackendUnavailable(f"{_where_backend(request, index, task)}: {exc}") from None
        backends.append(chosen[name])
    return backends


def _where_backend(request: SpawnRequest, index: int, task: TaskRequest) -> str:
    if task.backend is not None:
        return f"task {index + 1} ({task_name(task, index)})"
    return "the spawn's backend" if request.backend is not None else "the server's default backend"


def _check_budget(budget: float | None) -> float | None:
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise InvalidInput(
            f"budget_usd must be a positive number of dollars (got {budget}); leave it out for none"
        )
    return budget


def _check_size(request: SpawnRequest, settings: Settings) -> None:
    if not request.tasks:
        raise InvalidInput(
            'tasks is empty: give at least one task, e.g. [{"task": "Review src/auth.py for injection '
            'bugs", "role": "security reviewer", "files": ["src/auth.py"]}]'
        )
    limit = settings.max_tasks_per_spawn
    if len(request.tasks) > limit:
        raise InvalidInput(
            f"{len(request.tasks)} tasks is more than one spawn may start ({limit}); split them over several "
            "spawn_parallel calls (they all run in parallel), or ask the operator to raise --max-tasks."
        )


def _check_concurrency(value: int | None, settings: Settings, warnings: list[str]) -> int | None:
    if value is None:
        return None
    if value < 1:
        raise InvalidInput(f"max_concurrency must be at least 1 (got {value}); leave it out for the default")
    if value > settings.max_concurrency:
        warnings.append(
            f"max_concurrency {value} is above the server's limit of {settings.max_concurrency}; "
            f"at most {settings.max_concurrency} tasks run at once."
        )
        return None
    return value


def _load_files(
    tasks: Sequence[TaskRequest], reader: FileReader, settings: Settings, room_bytes: int
) -> dict[str, FileText]:
    """Check every path, every task's byte budget and the server's room before reading anything (in a
    worker thread). Each file is read once, however many tasks name it."""
    paths = dict.fromkeys(path for task in tasks for path in task.files)  # each file checked once
    infos = {path: reader.check(path) for path in paths}
    limit = settings.max_task_file_bytes
    for index, task in enumerate(tasks):
        total = sum(reader.shown_size(infos[path]) for path in dict.fromkeys(task.files))
        if total > limit:
            raise InvalidInput(
                f"task {index + 1} ({task_name(task, index)}) names {total} bytes of files, more than "
                f"{limit} per task; split it into tasks that each read fewer files."
            )
    distinct = {info.real: reader.shown_size(info) for info in infos.values()}
    if sum(distinct.values()) > room_bytes:
        raise InvalidInput(
            f"the spawn's files take {sum(distinct.values())} bytes, and only {max(room_bytes, 0)} more fit "
            f"now. {queued_bytes_hint(settings)}"
        )
    return reader.read_files(infos.values())


def queued_bytes_hint(settings: Settings) -> str:
    """What to do when a spawn would hold more than the server's ``max_queued_bytes``."""
    return (
        f"Unfinished tasks may hold at most {settings.max_queued_bytes} bytes of task text, shared context "
        "and files in all (--max-queued-bytes): wait for tasks to finish (task_output) or cancel some, "
        "or name fewer or smaller files."
    )


def _plan(
    index: int,
    task: TaskRequest,
    files: Mapping[str, FileText],
    system: str,
    cache: bool,
    settings: Settings,
    backend: Backend,
    schema: Mapping[str, Any] | None,
    depends_on: tuple[int, ...],
    cwd: Path | None,
) -> PlannedTask:
    model = backend.model_for(task.model, settings.model)
    spec = TaskSpec(
        index=index,
        label=task.label or default_label(index),
        role=task.role,
        task=task.task,
        model=model,
        backend=backend.name,
        timeout_s=task.timeout_s or backend.traits.default_timeout_s or settings.task_timeout_s,
        files=tuple(task.files),
        output_schema=schema,
        depends_on=depends_on,
    )
    request = SubagentRequest(
        model=model,
        max_tokens=task.max_tokens or settings.max_tokens,
        system=system,
        prompt="",  # written when the task starts, from TaskPrompt
        cache_system=cache,
        output_schema=schema,
        tools=bool(task.tools),
        cwd=cwd,
    )
    return PlannedTask(spec, request, backend, TaskPrompt(task, files, schema))


def _resolve_schemas(request: SpawnRequest) -> list[Mapping[str, Any] | None]:
    resolved: dict[str, Mapping[str, Any]] = {}  # one check per distinct schema, however many tasks use it

    def resolve(index: int, spec: Mapping[str, Any] | str | None) -> Mapping[str, Any] | None:
        if spec is None:
            return None
        key = spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True)
        if key not in resolved:
            try:
                resolved[key] = resolve_schema(spec)
            except InvalidInput as exc:
                where = "the spawn's output_schema" if index < 0 else f"task {index + 1}'s output_schema"
                raise InvalidInput(f"{where}: {str(exc).removeprefix('output_schema: ')}") from None
        return resolved[key]

    default = resolve(-1, request.output_schema)
    return [
        resolve(i, task.output_schema) if task.output_schema is not None else default
        for i, task in enumerate(request.tasks)
    ]
