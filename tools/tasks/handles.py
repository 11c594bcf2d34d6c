"""What a task handle stands for, written into its id, so that any process on the same store can take
up a handle it never gave out (after a restart, say) from the id alone.

A ``run_parallel`` with the default synthesis is its group's id, as ``spawn_parallel`` gave it: the
same id works in ``task_output``, ``list_tasks`` and ``cancel_tasks``. Any other handle is the group's
id, the tool and its arguments (less ``wait_s``): ``g-….run.<base64url JSON>``. Ids are the server's
own (a group id is random), so a handle is as hard to guess as the group.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

Kind = Literal["run", "task_output", "synthesize"]

#: the tools whose calls may become tasks, by the kind of their handle
TOOLS: Final[dict[str, Kind]] = {
    "run_parallel": "run",
    "task_output": "task_output",
    "synthesize": "synthesize",
}
_RUN_DEFAULTS: Final = {"mode": "auto", "instructions": None, "quorum": "any"}
_SEP: Final = "."


@dataclass(frozen=True, slots=True)
class Handle:
    """A background call: of which kind, on which group, with which arguments."""

    kind: Kind
    group_id: str
    arguments: dict[str, Any]

    @property
    def task_id(self) -> str:
        if self.kind == "run" and self.arguments == _RUN_DEFAULTS:
            return self.group_id
        packed = json.dumps(self.arguments, separators=(",", ":"), sort_keys=True).encode()
        return _SEP.join([self.group_id, self.kind, base64.urlsafe_b64encode(packed).decode().rstrip("=")])


def handle_for(
    tool: str, arguments: dict[str, Any], answer: dict[str, Any], *, finished_too: bool = False
) -> Handle | None:
    """The handle of a call of ``tool`` that did not finish at once (``answer``: its structured content),
    or None when it needs none: it finished (unless ``finished_too``), or it failed."""
    kind = TOOLS.get(tool)
    if kind is None or "error" in answer or (answer.get("done", True) and not finished_too):
        return None
    if kind == "run":
        synthesis = {key: arguments.get(key, default) for key, default in _RUN_DEFAULTS.items()}
        return Handle("run", str(answer["group_id"]), synthesis)
    kept = {key: value for key, value in arguments.items() if key != "wait_s"}
    return Handle(kind, _first_group(answer), kept)


def parse(task_id: str) -> Handle | None:
    """The handle ``task_id`` stands for; None if it stands for none."""
    parts = task_id.split(_SEP)
    if len(parts) == 1:
        return Handle("run", task_id, dict(_RUN_DEFAULTS)) if task_id.startswith("g-") else None
    if len(parts) != 3 or parts[1] not in TOOLS.values():
        return None
    group_id, kind, packed = parts
    try:
        arguments: Any = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(arguments, dict):
        return None
    return Handle(cast(Kind, kind), group_id, cast(dict[str, Any], arguments))


def _first_group(answer: dict[str, Any]) -> str:
    groups = cast(list[dict[str, Any]], answer.get("groups") or [])
    return str(groups[0]["group_id"]) if groups else "g-"
