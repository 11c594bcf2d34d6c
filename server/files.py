"""Reading the files a task names, only inside the allowed roots.

A path is resolved (symlinks and ``..`` included) before it is checked, so neither can lead outside a
root. Binary files and special files are refused; a file over the size limit is cut at a line break and
the prompt says so. All of it is blocking I/O: call ``read_files`` in a worker thread.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fanout_mcp.server.errors import InvalidInput

_SNIFF_BYTES = 8_192


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


class FileReader:
    """Resolves and reads files inside a fixed set of roots."""

    def __init__(self, roots: Sequence[Path], *, max_file_bytes: int) -> None:
        self._roots = tuple(Path(os.path.realpath(root)) for root in roots)
        self._max_file_bytes = max_file_bytes

    @property
    def roots(self) -> tuple[Path, ...]:
        return self._roots

    def resolve(self, raw: str) -> Path:
        """The real path of ``raw``, if it is a regular file inside a root.

        Raises:
            InvalidInput: empty, missing, outside every root, or not a regular file.
        """
        if not raw.strip() or "\0" in raw:
            raise InvalidInput(f"file path {raw!r} is empty or malformed")
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = self._roots[0] / candidate
        real = Path(os.path.realpath(candidate))
        if not any(real.is_relative_to(root) for root in self._roots):
            raise InvalidInput(
                f"file {raw!r} is outside the allowed roots ({self._describe_roots()}); only files inside "
                "them can be read. Use a path inside a root, or ask the operator to add one with --root."
            )
        try:
            mode = real.stat().st_mode
        except FileNotFoundError:
            raise InvalidInput(
                f"file {raw!r} does not exist (relative paths start at {self._roots[0]})"
            ) from None
        except OSError as exc:
            raise InvalidInput(f"file {raw!r} cannot be read: {exc.strerror}") from None
        if stat.S_ISDIR(mode):
            raise InvalidInput(f"{raw!r} is a directory; list the files inside it that the task needs")
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"{raw!r} is not a regular file")
        return real

    def read(self, raw: str) -> FileText:
        """Read one file for a prompt, cut to the size limit.

        Raises:
            InvalidInput: see ``resolve``; also a binary file.
        """
        real = self.resolve(raw)
        try:
            with real.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                data = handle.read(self._max_file_bytes + 1)
        except OSError as exc:
            raise InvalidInput(f"file {raw!r} cannot be read: {exc.strerror}") from None
        if b"\0" in data[:_SNIFF_BYTES]:
            raise InvalidInput(f"file {raw!r} looks binary; only text files can be put in a prompt")
        if len(data) > self._max_file_bytes:
            data = _cut_at_line(data[: self._max_file_bytes])
        else:
            size = max(size, len(data))
        text = data.decode("utf-8", errors="replace")
        return FileText(path=raw, real=str(real), text=text, size=size, shown=len(data))

    def read_files(self, paths: Iterable[str]) -> dict[str, FileText]:
        """Read each distinct path once."""
        return {path: self.read(path) for path in dict.fromkeys(paths)}

    def _describe_roots(self) -> str:
        return ", ".join(str(root) for root in self._roots)


def _cut_at_line(data: bytes) -> bytes:
    newline = data.rfind(b"\n")
    return data[: newline + 1] if newline > 0 else data
