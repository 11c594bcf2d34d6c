"""The workspace tools of an edit task on the API: the read tools plus ``write_file``, ``edit_file`` and
``delete_file``, all confined to the task's worktree.

A path is resolved first (``..`` and symlinks, the deepest existing parent for a new file) and must stay
inside the worktree's real path; anything under ``.git`` is refused, however it is spelled. A refusal is
an answer the subagent reads, never the end of its task. Nothing here runs git: the server commits the
worktree when the task ends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ..core.errors import InvalidInput
from ..intake.files import FileReader
from .workspace import TOOLS, ToolAnswer, Workspace

MAX_WRITE_BYTES: Final = 5 * 1024 * 1024

WRITE_TOOLS: Final[list[dict[str, Any]]] = [
    {
        "name": "write_file",
        "description": "Create a file of the workspace, or replace all of its text; its directories are made "
        "as needed. Paths are relative to the workspace root.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": "edit_file",
        "description": "Replace an exact piece of a file's text (old_text, which must occur exactly once: "
        "include enough lines around it) with new_text.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old_text": {"type": "string", "minLength": 1},
                "new_text": {"type": "string"},
            },
            "required": ["path", "old_text", "new_text"],
        },
    },
    {
        "name": "delete_file",
        "description": "Delete a file of the workspace.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
]


class EditWorkspace(Workspace):
    """Read and write tools over one worktree."""

    def __init__(self, worktree: Path) -> None:
        super().__init__(FileReader([worktree], max_file_bytes=MAX_WRITE_BYTES))
        self._root = Path(os.path.realpath(worktree))

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [*TOOLS, *WRITE_TOOLS]

    def call(
        self, name: str, arguments: Mapping[str, Any], stop: threading.Event | None = None
    ) -> ToolAnswer:
        writers = {"write_file": self._write, "edit_file": self._edit, "delete_file": self._delete}
        writer = writers.get(name)
        if writer is None:
            return super().call(name, arguments, stop)
        try:
            return ToolAnswer(writer(arguments))
        except InvalidInput as exc:
            return ToolAnswer(str(exc), True)
        except OSError as exc:
            return ToolAnswer(f"cannot do that: {exc.strerror or exc}", True)

    def _write(self, arguments: Mapping[str, Any]) -> str:
        path = self._target(arguments)
        content = _string(arguments, "content")
        if len(content.encode()) > MAX_WRITE_BYTES:
            raise InvalidInput(f"content is more than {MAX_WRITE_BYTES:,} bytes; write smaller files")
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        path.write_text(content)
        return f"{'replaced' if existed else 'created'} {self._shown(path)} ({len(content):,} characters)"

    def _edit(self, arguments: Mapping[str, Any]) -> str:
        path = self._existing(arguments)
        old, new = _string(arguments, "old_text"), _string(arguments, "new_text")
        if not old:
            raise InvalidInput("old_text is empty: give the exact text to replace")
        text = path.read_text()
        found = text.count(old)
        if found != 1:
            where = "does not occur" if found == 0 else f"occurs {found} times"
            raise InvalidInput(
                f"old_text {where} in {self._shown(path)}; it must occur exactly once: read the file again "
                "and quote a longer, unique piece"
            )
        path.write_text(text.replace(old, new, 1))
        return f"edited {self._shown(path)}"

    def _delete(self, arguments: Mapping[str, Any]) -> str:
        path = self._existing(arguments)
        path.unlink()
        return f"deleted {self._shown(path)}"

    def _existing(self, arguments: Mapping[str, Any]) -> Path:
        path = self._target(arguments)
        if not path.is_file():
            raise InvalidInput(f"{self._shown(path)} is not an existing file of the workspace")
        return path

    def _target(self, arguments: Mapping[str, Any]) -> Path:
        """The real path a tool use names, inside the worktree and outside ``.git``."""
        raw = _string(arguments, "path")
        if not raw.strip() or "\0" in raw:
            raise InvalidInput(f"path {raw!r} is empty or malformed")
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self._root / candidate
        real = Path(os.path.realpath(candidate))  # symlinks resolved, also of a file not yet there
        if real == self._root or not real.is_relative_to(self._root):
            raise InvalidInput(f"{raw!r} is outside the workspace: only its files may be written")
        if ".git" in real.relative_to(self._root).parts:
            raise InvalidInput(f"{raw!r} is inside .git: the server keeps git's files, leave them alone")
        return real

    def _shown(self, path: Path) -> str:
        return str(path.relative_to(self._root))


def _string(arguments: Mapping[str, Any], key: str) -> str:
    value = arguments.get(key)
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string (got {value!r})")
    return value
