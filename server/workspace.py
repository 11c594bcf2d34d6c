"""Read-only workspace tools for API subagents: list files, read a file by lines, search text.

A task that sets ``tools: ["read"]`` gets these as tools of its own; the backend runs the tool loop and
calls ``Workspace.call`` for each tool use (blocking I/O: from a worker thread). Every path goes through
the same ``FileReader`` checks as a task's ``files`` (inside the roots after resolving ``..`` and
symlinks, regular files only, binary refused), and every answer is bounded. A refusal is an answer too:
the subagent reads why and carries on, so one bad path never ends its task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fanout_mcp.server.errors import InvalidInput
from fanout_mcp.server.files import FileInfo, FileReader

MAX_ANSWER_CHARS: Final = 20_000  #: one tool answer; the subagent pages on with start_line
MAX_READ_BYTES: Final = 5 * 1024 * 1024  #: larger files are refused, not read in part
MAX_LISTED: Final = 500
MAX_HITS: Final = 100
_MAX_SEARCHED_FILE_BYTES: Final = 1024 * 1024
_SNIFF: Final = 8_192

TOOLS: Final[list[dict[str, Any]]] = [
    {
        "name": "list_files",
        "description": "List the files below a directory of the workspace (hidden and generated directories "
        "are skipped). Paths are relative to the workspace root.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "A directory; default: the root."}},
        },
    },
    {
        "name": "read_file",
        "description": "Read a text file of the workspace, with line numbers. Long files come in parts: "
        "ask again with start_line to continue.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "start_line": {"type": "integer", "minimum": 1, "description": "First line (default 1)."},
                "end_line": {"type": "integer", "minimum": 1, "description": "Last line (default: the end)."},
            },
            "required": ["path"],
        },
    },
    {
        "name": "search_text",
        "description": "Find lines containing a text (not a regular expression) in the workspace's files "
        "below a directory. Answers path:line: text, at most 100 hits.",
        "input_schema": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1},
                "path": {"type": "string", "description": "A directory or file; default: the root."},
                "ignore_case": {"type": "boolean"},
            },
            "required": ["text"],
        },
    },
]


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    text: str
    is_error: bool = False


class Workspace:
    """The read-only tools over the files inside the server's roots."""

    def __init__(self, reader: FileReader) -> None:
        self._reader = reader

    def call(self, name: str, arguments: Mapping[str, Any]) -> ToolAnswer:
        """Run one tool use; bad arguments and refused paths come back as error answers."""
        handler = {"list_files": self._list, "read_file": self._read, "search_text": self._search}.get(name)
        if handler is None:
            return ToolAnswer(
                f"there is no tool {name!r}; the tools are list_files, read_file, search_text", True
            )
        try:
            return ToolAnswer(_bounded(handler(arguments)))
        except InvalidInput as exc:
            return ToolAnswer(str(exc), True)
        except OSError as exc:
            return ToolAnswer(f"cannot read that: {exc.strerror or exc}", True)

    @staticmethod
    def describe(name: str, arguments: Mapping[str, Any]) -> str:
        """A short line for the task's partial output, e.g. ``read_file src/app.py:10-40``."""
        path = str(arguments.get("path", "."))
        if name == "read_file":
            start, end = arguments.get("start_line"), arguments.get("end_line")
            return f"read_file {path}" + (f":{start or 1}-{end or ''}" if start or end else "")
        if name == "search_text":
            return f"search_text {str(arguments.get('text', ''))[:60]!r} in {path}"
        return f"{name} {path}"

    def _list(self, arguments: Mapping[str, Any]) -> str:
        directory = self._reader.check_directory(_text(arguments, "path", "."))
        found, total = self._reader.files_under(directory, MAX_LISTED)
        more = f"\n... and {total - len(found)} more: list a subdirectory" if total > len(found) else ""
        return ("\n".join(found) or "(no files)") + more

    def _read(self, arguments: Mapping[str, Any]) -> str:
        info = self._reader.check(_text(arguments, "path", ""))
        if info.size > MAX_READ_BYTES:
            raise InvalidInput(
                f"{info.path!r} is {info.size:,} bytes, more than the {MAX_READ_BYTES:,} this tool reads; "
                "use search_text to find what you need in it"
            )
        start = _line(arguments, "start_line", 1) or 1
        end = _line(arguments, "end_line", None)
        lines = self._text_of(info).splitlines()
        last = len(lines) if end is None else min(end, len(lines))
        if start > max(len(lines), 1):
            raise InvalidInput(f"{info.path!r} has {len(lines)} lines; start_line {start} is past the end")
        shown: list[str] = []
        size = 0
        for number in range(start, last + 1):
            line = f"{number}: {lines[number - 1]}"
            if size + len(line) > MAX_ANSWER_CHARS - 200 and shown:
                return "\n".join(shown) + f"\n[cut: ask again with start_line {number} for the rest]"
            shown.append(line)
            size += len(line) + 1
        return "\n".join(shown) if shown else "(empty file)"

    def _search(self, arguments: Mapping[str, Any]) -> str:
        needle = _text(arguments, "text", "")
        if not needle:
            raise InvalidInput("text is empty: give the text to look for")
        ignore_case = arguments.get("ignore_case") is True
        wanted = needle.lower() if ignore_case else needle
        where = _text(arguments, "path", ".")
        try:
            files = [self._reader.check(where)]
        except InvalidInput:
            directory = self._reader.check_directory(where)
            shown, _ = self._reader.files_under(directory, 10_000)
            files = [self._reader.check(str(self._reader.roots[0] / path)) for path in shown]
        hits: list[str] = []
        for info in files:
            for number, line in enumerate(self._searchable(info).splitlines(), 1):
                if wanted in (line.lower() if ignore_case else line):
                    hits.append(f"{self._reader.shown(info.real)}:{number}: {line.strip()[:300]}")
                    if len(hits) >= MAX_HITS:
                        return "\n".join(hits) + "\n[more hits: search a narrower path]"
        return "\n".join(hits) or f"no line contains {needle!r}"

    def _text_of(self, info: FileInfo) -> str:
        data = self._reader.read_bytes(info, MAX_READ_BYTES)
        if b"\0" in data[:_SNIFF]:
            raise InvalidInput(f"{info.path!r} looks binary; only text files can be read")
        return data.decode("utf-8", errors="replace")

    def _searchable(self, info: FileInfo) -> str:
        if info.size > _MAX_SEARCHED_FILE_BYTES:
            return ""
        try:
            return self._text_of(info)
        except InvalidInput:
            return ""  # binary or unreadable files hold no text to find


def _text(arguments: Mapping[str, Any], key: str, default: str) -> str:
    value = arguments.get(key, default)
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string (got {value!r})")
    return value


def _line(arguments: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = arguments.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{key} must be a line number >= 1 (got {value!r})")
    return value


def _bounded(text: str) -> str:
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    return text[:MAX_ANSWER_CHARS] + "\n[cut: ask for less]"
