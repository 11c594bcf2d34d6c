"""A spawn's ``depends_on``: each task's dependencies as positions in the spawn, checked for unknown or
ambiguous names and for cycles before any task exists."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from ..core.errors import InvalidInput
from .requests import TaskRequest, default_label, task_name


def resolve_dependencies(tasks: Sequence[TaskRequest]) -> list[tuple[int, ...]]:
    """Each task's dependencies as positions in ``tasks``.

    Raises:
        InvalidInput: an unknown or ambiguous name, or a cycle (the message shows it).
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, task in enumerate(tasks):
        by_label[task.label or default_label(index)].append(index)
    resolved: list[tuple[int, ...]] = []
    for index, task in enumerate(tasks):
        deps = [_dependency(ref, index, tasks, by_label) for ref in task.depends_on]
        resolved.append(tuple(dict.fromkeys(deps)))
    cycle = _find_cycle(resolved)
    if cycle:
        path = " needs ".join(task_name(tasks[i], i) for i in cycle)
        raise InvalidInput(
            f"depends_on forms a cycle: {path}; tasks in a cycle can never start. Remove one of these "
            "dependencies."
        )
    return resolved


def _dependency(
    ref: str | int, index: int, tasks: Sequence[TaskRequest], by_label: Mapping[str, list[int]]
) -> int:
    where = f"task {index + 1} ({task_name(tasks[index], index)}) depends_on {ref!r}"
    if isinstance(ref, int):
        if not 0 <= ref < len(tasks):
            raise InvalidInput(f"{where}: positions run from 0 to {len(tasks) - 1}")
        return ref
    found = by_label.get(ref, [])
    if not found:
        known = ", ".join(repr(label) for label in by_label) or "none: give the tasks labels"
        raise InvalidInput(f"{where}: no task of this spawn has that label (labels: {known})")
    if len(found) > 1:
        raise InvalidInput(f"{where}: {len(found)} tasks have that label; give them distinct labels")
    return found[0]


def _find_cycle(deps: Sequence[tuple[int, ...]]) -> list[int] | None:
    """One cycle in the dependency graph, as a closed path, or None."""
    state = [0] * len(deps)  # 0 unseen, 1 on the current path, 2 done
    stack: list[int] = []

    def visit(node: int) -> list[int] | None:
        state[node] = 1
        stack.append(node)
        for dep in deps[node]:
            if state[dep] == 1:
                return [*stack[stack.index(dep) :], dep]
            if state[dep] == 0 and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in range(len(deps)):
        if state[start] == 0 and (cycle := visit(start)):
            return cycle
    return None
