"""Reading the files a task names, only inside the allowed roots.

A path is resolved (symlinks and ``..`` included) before it is checked, so neither can lead outside a
root; where the platform can say which file an open descriptor refers to (Linux, macOS), the opened
file is checked again, so a symlink swapped in between the check and the open cannot lead out either.
A hard link inside a root counts as inside (only someone who can already write there can make one).
Binary files and special files are refused; a file over the size limit is cut at a line break and the
prompt says so. All of it is blocking I/O: call these methods in a worker thread.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Final

from ..core.errors import InvalidInput

SNIFF_BYTES: Final = 8_192  #: how much of a file is looked at to tell text from binary


@dataclass(frozen=True, slots=True)
class FileText:
    """A file's text as it goes into a prompt."""

    path: str  #: as the caller wrote it
    real: str  #: resolved, symlinks followed
    text: str
    size: int  #: bytes on disk
    shown: int  #: bytes included in ``text``

    @property
    def truncated(self) -> bool:
        return self.shown < self.size


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A checked path and its size, before anything is read."""

    path: str
    real: Path
    size: int


class FileReader:
    """Resolves and reads files inside a fixed set of roots (possibly none)."""

    def __init__(self, roots: Sequence[Path], *, max_file_bytes: int) -> None:
        self._roots = tuple(Path(os.path.realpath(root)) for root in roots)
        self._max_file_bytes = max_file_bytes

    @property
    def roots(self) -> tuple[Path, ...]:
        return self._roots

    def check(self, raw: str) -> FileInfo:
        """Resolve ``raw`` and check that it is a regular file inside a root.

        Raises:
            InvalidInput: empty, missing, outside every root, or not a regular file.
        """
        if not self._roots:
            raise InvalidInput(
                "this server has no allowed roots, so tasks cannot read files: it was started in the "
                "filesystem root or a home directory without --root, and never defaults to those. Add "
                '"--root", "/path/to/project" to the server\'s args in the client\'s configuration.'
            )
        if not raw.strip() or "\0" in raw:
            raise InvalidInput(f"file path {raw!r} is empty or malformed")
        try:
            candidate = Path(raw).expanduser()
        except RuntimeError:  # "~someone" for a user that does not exist
            raise InvalidInput(f"file path {raw!r} names a home directory that does not exist") from None
        if not candidate.is_absolute():
            candidate = self._roots[0] / candidate
        real = Path(os.path.realpath(candidate))
        self._check_inside(raw, real)
        try:
            info = real.stat()
        except FileNotFoundError:
            raise InvalidInput(
                f"file {raw!r} does not exist (relative paths start at {self._roots[0]})"
            ) from None
        except OSError as exc:
            raise InvalidInput(f"file {raw!r} cannot be read: {exc.strerror}") from None
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInput(f"{raw!r} is a directory; list the files inside it that the task needs")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{raw!r} is not a regular file")
        return FileInfo(path=raw, real=real, size=info.st_size)

    def shown_size(self, info: FileInfo) -> int:
        """Bytes of this file that would go into a prompt."""
        return min(info.size, self._max_file_bytes)

    def read(self, info: FileInfo) -> FileText:
        """Read one checked file for a prompt, cut to the size limit.

        Raises:
            InvalidInput: unreadable, binary, or no longer the file that was checked.
        """
        raw = info.path
        try:
            with self.open(info) as handle:
                size = os.fstat(handle.fileno()).st_size
                data = handle.read(self._max_file_bytes + 1)
        except OSError as exc:
            raise InvalidInput(f"file {raw!r} cannot be read: {exc.strerror}") from None
        if looks_binary(data):
            raise InvalidInput(f"file {raw!r} looks binary; only text files can be put in a prompt")
        if len(data) > self._max_file_bytes:
            data = _cut_at_line(data[: self._max_file_bytes])
        else:
            size = max(size, len(data))
        text = data.decode("utf-8", errors="replace")
        return FileText(path=raw, real=str(info.real), text=text, size=size, shown=len(data))

    def read_bytes(self, info: FileInfo, limit: int) -> bytes:
        """Up to ``limit`` bytes of a checked file, checked again once open (as ``read`` does).

        Raises:
            InvalidInput: unreadable, or no longer the file that was checked.
        """
        try:
            with self.open(info) as handle:
                return handle.read(limit)
        except OSError as exc:
            raise InvalidInput(f"file {info.path!r} cannot be read: {exc.strerror}") from None

    def open(self, info: FileInfo) -> BinaryIO:
        """Open a checked file for reading, checked again once open: a path swapped for a symlink since
        the check cannot lead out of the roots.

        Raises:
            InvalidInput: the file opened is outside every root.
            OSError: it cannot be opened.
        """
        handle = info.real.open("rb")
        try:
            opened = _opened_path(handle.fileno())
            if opened is not None:
                self._check_inside(info.path, opened)
        except BaseException:
            handle.close()
            raise
        return handle

    def read_files(self, infos: Iterable[FileInfo]) -> dict[str, FileText]:
        """Read each checked file once, keyed by the path as written: two paths to one file share its
        text (one string object), each keeping the path its caller wrote."""
        read: dict[Path, FileText] = {}
        texts: dict[str, FileText] = {}
        for info in infos:
            first = read.get(info.real)
            if first is None:
                texts[info.path] = read[info.real] = self.read(info)
            else:
                texts[info.path] = replace(first, path=info.path)
        return texts

    def check_directory(self, raw: str) -> Path:
        """The real path of a directory inside a root.

        Raises:
            InvalidInput: missing, outside every root, or not a directory.
        """
        if not self._roots:
            self.check(raw)  # raises the no-roots message
        if "\0" in raw:
            raise InvalidInput(f"directory path {raw!r} is malformed")
        try:
            candidate = Path(raw).expanduser() if raw.strip() else Path(".")
        except RuntimeError:  # "~someone" for a user that does not exist
            raise InvalidInput(f"directory path {raw!r} names a home directory that does not exist") from None
        if not candidate.is_absolute():
            candidate = self._roots[0] / candidate
        real = Path(os.path.realpath(candidate))
        self._check_inside(raw, real, "directory")
        if not real.is_dir():
            raise InvalidInput(f"{raw!r} is not a directory (relative paths start at {self._roots[0]})")
        return real

    def subdirectories(self, directory: Path) -> list[Path]:
        """The directories directly inside ``directory``, sorted, without hidden or generated ones."""
        return sorted(
            entry for entry in directory.iterdir()
            if entry.is_dir() and not entry.is_symlink() and not _skipped(entry.name)
        )  # fmt: skip

    def files_under(self, directory: Path, limit: int) -> tuple[list[str], int]:
        """Up to ``limit`` regular files below ``directory`` (shown relative to the first root when inside
        it), sorted, without hidden or generated directories; and how many there are (counted up to
        ``COUNT_LIMIT``, where the walk stops)."""
        found: list[str] = []
        total = 0
        for folder, dirs, names in os.walk(directory):
            if total >= COUNT_LIMIT:
                break
            dirs[:] = sorted(d for d in dirs if not _skipped(d))
            for name in sorted(names):
                path = Path(folder) / name
                if name.startswith(".") or path.is_symlink() or not path.is_file():
                    continue
                total += 1
                if len(found) < limit:
                    found.append(self.shown(path))
        return found, total

    def shown(self, path: Path) -> str:
        """A path as a task should name it: relative to the first root when inside it."""
        return str(path.relative_to(self._roots[0])) if path.is_relative_to(self._roots[0]) else str(path)

    def _check_inside(self, raw: str, real: Path, what: str = "file") -> None:
        if not any(real.is_relative_to(root) for root in self._roots):
            roots = ", ".join(str(root) for root in self._roots)
            only = (
                "files inside them can be read" if what == "file" else "directories inside them can be used"
            )
            raise InvalidInput(
                f"{what} {raw!r} is outside the allowed roots ({roots}); only {only}. Use a path inside a "
                "root, or ask the operator to add one with --root."
            )


COUNT_LIMIT: Final = 10_000  #: files_under counts this many at most (then the walk stops)
_GENERATED: Final = frozenset({"node_modules", "__pycache__", "venv", "dist", "build", "target", "vendor"})


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _GENERATED or name.endswith(".egg-info")


def looks_binary(data: bytes) -> bool:
    """Whether a file that starts with ``data`` is binary (a NUL byte in its first ``SNIFF_BYTES``)."""
    return b"\0" in data[:SNIFF_BYTES]


def _opened_path(fd: int) -> Path | None:
    """The real path of an open file, where the platform can tell."""
    if sys.platform.startswith("linux"):
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return None
    if sys.platform == "darwin":
        import fcntl

        try:
            raw = fcntl.fcntl(fd, fcntl.F_GETPATH, b"\0" * 1024)  # type: ignore[attr-defined]
        except OSError:
            return None
        return Path(os.fsdecode(raw.rstrip(b"\0")))
    return None


def _cut_at_line(data: bytes) -> bytes:
    newline = data.rfind(b"\n")
    return data[: newline + 1] if newline > 0 else data
