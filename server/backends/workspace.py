"""Read-only workspace tools for API subagents: list files, read a file by lines, search text.

A task that sets ``tools: ["read"]`` gets these as tools of its own; the backend runs the tool loop and
calls ``Workspace.call`` for each tool use (blocking I/O: from a worker thread). Every path goes through
the same ``FileReader`` checks as a task's ``files`` (inside the roots after resolving ``..`` and
symlinks, regular files only, binary refused), and every answer is bounded. A refusal is an answer too:
the subagent reads why and carries on, so one bad path never ends its task.

Lines are numbered as ``grep -n`` numbers them: split at ``\n`` only (a form feed or a U+2028 is text).
``search_text`` streams each file line by line, big ones included, within a byte budget per call; an
answer says which files it did not search and why (binary, unreadable, past the budget or the file
cap), so "no line contains" is only ever said of what was searched. A search checks its ``stop`` event
at every file and line: the backend sets it when the task is cancelled, so the worker thread ends too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Final

from ..core.errors import InvalidInput
from ..intake.files import COUNT_LIMIT, SNIFF_BYTES, FileInfo, FileReader, looks_binary

MAX_ANSWER_CHARS: Final = 20_000  #: one tool answer; the subagent pages on with start_line
MAX_READ_BYTES: Final = 5 * 1024 * 1024  #: larger files are refused, not read in part
MAX_LISTED: Final = 500
MAX_HITS: Final = 100
SEARCH_BUDGET_BYTES: Final = 32 * 1024 * 1024  #: bytes one search_text call reads, over all its files
MAX_SEARCHED_FILES: Final = 5_000  #: files one search_text call looks at
_PIECE: Final = 64 * 1024  #: a longer line is searched in pieces of this size, overlapping by the needle
_HITS_CHARS: Final = MAX_ANSWER_CHARS - 2_000  #: room left for the note on what was not searched
_NAMED: Final = 5  #: files named in that note, per reason

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
        "below a directory, big files included. Answers path:line: text, at most 100 hits, and names any "
        "file it did not search (binary, unreadable, or past what one search reads).",
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


class Stopped(Exception):
    """The tool use was given up (its task was cancelled or timed out): nothing reads on."""


class Workspace:
    """The read-only tools over the files inside the server's roots."""

    def __init__(self, reader: FileReader) -> None:
        self._reader = reader

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools this workspace offers, as the Messages API takes them."""
        return TOOLS

    def call(
        self, name: str, arguments: Mapping[str, Any], stop: threading.Event | None = None
    ) -> ToolAnswer:
        """Run one tool use; bad arguments and refused paths come back as error answers.

        Raises:
            Stopped: ``stop`` was set while a search was reading.
        """
        handlers: dict[str, Callable[[Mapping[str, Any]], str]] = {
            "list_files": self._list,
            "read_file": self._read,
            "search_text": partial(self._search, stop=stop or threading.Event()),
        }
        handler = handlers.get(name)
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
        more = f"\n... and {_more(total, found)} more: list a subdirectory" if total > len(found) else ""
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
        lines = _lines(self._text_of(info))
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

    def _search(self, arguments: Mapping[str, Any], stop: threading.Event) -> str:
        needle = _text(arguments, "text", "")
        if not needle:
            raise InvalidInput("text is empty: give the text to look for")
        where = _text(arguments, "path", ".")
        paths, beyond = self._searched_paths(where)
        search = _Search(needle, where, arguments.get("ignore_case") is True, stop, SEARCH_BUDGET_BYTES)
        for path in paths:
            search.check_stop()
            if search.full:
                break
            self._search_file(path, search)
        search.beyond = beyond
        return search.answer()

    def _searched_paths(self, where: str) -> tuple[list[str], str]:
        """The files to search (a file, or those below a directory), and how many more were left out."""
        try:
            return [self._reader.check(where).path], ""
        except InvalidInput:
            directory = self._reader.check_directory(where)
        shown, total = self._reader.files_under(directory, MAX_SEARCHED_FILES)
        return [str(self._reader.roots[0] / path) for path in shown], _more(total, shown)

    def _search_file(self, path: str, search: _Search) -> None:
        if search.budget <= 0:
            search.over_budget.append(self._reader.shown(Path(path)))
            return
        try:
            info = self._reader.check(path)
            with self._reader.open(info) as handle:
                shown = self._reader.shown(info.real)
                head = handle.read(SNIFF_BYTES)
                if looks_binary(head):
                    search.budget -= len(head)
                    search.binary.append(shown)
                    return
                handle.seek(0)
                search.scan(shown, handle)
        except (InvalidInput, OSError):
            search.unreadable.append(self._reader.shown(Path(path)))

    def _text_of(self, info: FileInfo) -> str:
        data = self._reader.read_bytes(info, MAX_READ_BYTES)
        if looks_binary(data):
            raise InvalidInput(f"{info.path!r} looks binary; only text files can be read")
        return data.decode("utf-8", errors="replace")


@dataclass(slots=True, eq=False)
class _Search:
    """One search_text call: what it found, what it read, and what it left out."""

    needle: str
    where: str
    ignore_case: bool
    stop: threading.Event
    budget: int  #: bytes it may still read
    hits: list[str] = field(default_factory=list[str])
    hits_chars: int = 0
    full: bool = False  #: as many hits as an answer holds: the search ends there
    searched: int = 0
    binary: list[str] = field(default_factory=list[str])
    unreadable: list[str] = field(default_factory=list[str])
    cut: str | None = None  #: the file the budget ran out in, and from which line
    over_budget: list[str] = field(default_factory=list[str])  #: files not opened: no budget left
    beyond: str = ""  #: how many files are past the file cap ("" for none; "at least N" when uncounted)
    _wanted: bytes = field(init=False, default=b"")
    _wanted_lower: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self._wanted, self._wanted_lower = self.needle.encode(), self.needle.lower()

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped

    def scan(self, shown: str, handle: BinaryIO) -> None:
        """Search one open file line by line. A line longer than ``_PIECE`` comes in pieces (memory
        stays bounded), each with the end of the one before, so a hit across two is still found."""
        self.searched += 1
        number, tail, last_hit = 1, b"", 0
        overlap = 4 * len(self.needle)  # bytes: a UTF-8 character has at most 4
        while piece := handle.readline(_PIECE):
            self.check_stop()
            if self.budget <= 0:
                self.cut = f"the rest of {shown} from line {number:,}"
                return
            self.budget -= len(piece)
            if number != last_hit and self._matches(tail + piece):
                last_hit = number
                self._hit(f"{shown}:{number}: {_decoded(tail + piece).strip()[:300]}")
                if self.full:
                    return
            if piece.endswith(b"\n"):
                number, tail = number + 1, b""
            else:
                tail = piece[-overlap:]

    def _matches(self, data: bytes) -> bool:
        if self.ignore_case:
            return self._wanted_lower in _decoded(data).lower()
        return self._wanted in data

    def _hit(self, line: str) -> None:
        if len(self.hits) >= MAX_HITS or self.hits_chars + len(line) > _HITS_CHARS:
            self.full = True
            return
        self.hits.append(line)
        self.hits_chars += len(line) + 1

    def answer(self) -> str:
        """The hits, or that there are none; and, whenever anything was not searched, what and why."""
        left_out = self._left_out()
        searched = _files(self.searched)
        lines = self.hits or [
            f"no line contains {self.needle!r}" + ("" if left_out else f" (searched {searched})")
        ]
        if self.full:
            lines.append("[more hits: search a narrower path]")
        if left_out:
            lines.append(f"[searched {searched}; not searched: {'; '.join(left_out)}]")
        return "\n".join(lines)

    def _left_out(self) -> list[str]:
        said: list[str] = []
        unread = [self.cut] if self.cut is not None else []
        if self.over_budget:
            unread.append(f"{_files(len(self.over_budget), 'more')} ({_names(self.over_budget)})")
        if unread:
            limit = _size(SEARCH_BUDGET_BYTES)
            said.append(f"{', '.join(unread)} (one search reads at most {limit}: search a narrower path)")
        if self.binary:
            said.append(f"{_files(len(self.binary), 'binary')} ({_names(self.binary)})")
        if self.unreadable:
            said.append(f"{_files(len(self.unreadable), 'unreadable')} ({_names(self.unreadable)})")
        if self.beyond:
            files = f"{self.beyond} file{'' if self.beyond == '1' else 's'}"
            cap = f"{MAX_SEARCHED_FILES:,}"
            said.append(f"{files} past the first {cap} below {self.where} (search a narrower path)")
        return said


def _more(total: int, shown: list[str]) -> str:
    """How many files of ``total`` are not in ``shown``, said as a count ("" for none): the walk stops
    counting at ``COUNT_LIMIT``, so from there it is a lower bound."""
    left = total - len(shown)
    if left <= 0:
        return ""
    return f"at least {left:,}" if total >= COUNT_LIMIT else f"{left:,}"


def _lines(text: str) -> list[str]:
    """The lines as ``grep -n`` numbers them: split at "\n" only, each without a trailing "\r"."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no line of its own
    return lines


def _decoded(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _files(count: int, kind: str = "") -> str:
    return f"{count:,} {kind}{' ' if kind else ''}file" + ("" if count == 1 else "s")


def _size(count: int) -> str:
    return f"{count // (1024 * 1024):,} MiB" if count >= 1024 * 1024 else f"{count:,} bytes"


def _names(paths: list[str]) -> str:
    named = ", ".join(path[-120:] for path in paths[:_NAMED])
    return named + (f" and {len(paths) - _NAMED:,} more" if len(paths) > _NAMED else "")


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
