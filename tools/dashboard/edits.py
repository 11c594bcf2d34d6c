"""Edit tasks on a page and in a report: the files each changed and the conflict matrix, read when the
page loads (the matrix merges every pair of change sets in git, too slow for every update)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ...server.changes.workshop import Workshop
from .views import View, edits_view

#: the most edit tasks whose pairs are merged for the conflict matrix (git merge-tree per pair)
MATRIX_MAX_TASKS: Final = 30


async def read_edits(workshop: Workshop, task_ids: Sequence[str], labels: Mapping[str, str]) -> View | None:
    """The edit tasks among ``task_ids``: files changed and the conflict matrix (up to
    ``MATRIX_MAX_TASKS`` of them); None when none is an edit task."""
    changes = await workshop.changes(task_ids)
    if not changes:
        return None
    overview = await workshop.overview(task_ids) if len(changes) <= MATRIX_MAX_TASKS else None
    return edits_view(changes, overview, labels)
