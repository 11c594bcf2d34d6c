"""What is allowed in a spawn but worth a second look, as warnings for the caller: tasks that share
files (so may not be independent), identical tasks, files cut to size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from .files import FileText
from .requests import TaskRequest, task_name

_MAX_WARNINGS = 12


def spawn_warnings(
    found: list[str], tasks: Sequence[TaskRequest], files: Mapping[str, FileText]
) -> list[str]:
    """``found`` (what the checks warned of) and what these tasks and their files warrant, at most
    ``_MAX_WARNINGS`` of them and a line that says how many more."""
    warnings = [*found, *_shared_files(tasks, files), *_duplicates(tasks), *_cut_files(files)]
    if len(warnings) > _MAX_WARNINGS:
        warnings = [*warnings[:_MAX_WARNINGS], f"... and {len(warnings) - _MAX_WARNINGS} more warnings"]
    return warnings


def _shared_files(tasks: Sequence[TaskRequest], files: Mapping[str, FileText]) -> list[str]:
    readers: dict[str, list[int]] = defaultdict(list)
    shown: dict[str, str] = {}
    for index, task in enumerate(tasks):
        for real in dict.fromkeys(files[path].real for path in task.files):
            readers[real].append(index)
        for path in task.files:
            shown.setdefault(files[path].real, path)
    return [
        f"tasks {_list(indices, tasks)} all read {shown[real]!r}: if one needs another's result, or they "
        "will edit the same file, they are not independent and should not run in parallel."
        for real, indices in readers.items()
        if len(indices) > 1
    ]


def _duplicates(tasks: Sequence[TaskRequest]) -> list[str]:
    seen: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for index, task in enumerate(tasks):
        key = (
            task.task.strip(),
            task.role,
            task.context,
            tuple(task.files),
            task.output_format,
            tuple(task.focus_areas),
            task.model,
            task.cwd,
        )
        seen[key].append(index)
    return [
        f"tasks {_list(indices, tasks)} are identical: they will do the same work (and cost) twice."
        for indices in seen.values()
        if len(indices) > 1
    ]


def _cut_files(files: Mapping[str, FileText]) -> list[str]:
    return [
        f"file {file.path!r} has {file.size} bytes; only the first {file.shown} were put in the prompt."
        for file in files.values()
        if file.truncated
    ]


def _list(indices: Sequence[int], tasks: Sequence[TaskRequest]) -> str:
    names = [task_name(tasks[i], i) for i in indices]
    return ", ".join(names[:-1]) + " and " + names[-1]
