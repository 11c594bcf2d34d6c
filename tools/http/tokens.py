"""Bearer tokens from a file (``--auth-tokens``): who may call, under which principal.

One line per token, ``<principal> sha256:<hex digest of the token>``; ``#`` starts a comment and blank
lines are skipped. The file holds digests only, never a usable token: ``fanout-mcp token add`` prints a
new token once and appends its digest. A bad line is reported by its number, never its content (a line
may hold a pasted token). The file is read again when it changes (checked on each request: one stat); a
change that leaves bad lines refuses every token until it is fixed, rather than keep a token the change
meant to remove.

Comparison: the presented token's digest against every line's with ``hmac.compare_digest``, all of them,
so the time taken does not say which line (or how much of one) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mcp.server.auth.provider import AccessToken, TokenVerifier

logger = logging.getLogger(__name__)

_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}"
PRINCIPAL: Final = re.compile(_NAME)
_LINE: Final = re.compile(rf"(?P<principal>{_NAME})\s+sha256:(?P<hex>[0-9a-f]{{64}})")


class TokenFileError(ValueError):
    """The token file cannot be used; the message names it and the numbers of its bad lines."""


@dataclass(frozen=True, slots=True)
class Entry:
    principal: str
    digest: bytes


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def read_tokens(path: Path) -> list[Entry]:
    """The entries of the token file at ``path``.

    Raises:
        TokenFileError: it cannot be read, or has bad lines (named by number only).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"token file {str(path)!r} cannot be read ({type(exc).__name__})") from None
    entries: list[Entry] = []
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        match = _LINE.fullmatch(content)
        if match is None:
            bad.append(number)
            continue
        entries.append(Entry(match["principal"], bytes.fromhex(match["hex"])))
    if bad:
        lines = ", ".join(map(str, bad))
        raise TokenFileError(
            f"token file {str(path)!r}: line{'s' if len(bad) > 1 else ''} {lines} not of the form "
            "'<principal> sha256:<64 lower-case hex digits>' (the lines are not shown: one may hold a "
            "token). `fanout-mcp token add NAME --file FILE` writes a good line."
        )
    return entries


class TokenFile(TokenVerifier):
    """Verifies bearer tokens against the token file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        """Raises ``TokenFileError`` if the file cannot be used now (the server does not start)."""
        self.path = path
        self._stamp = self._stat()
        self._entries = read_tokens(path)

    @property
    def principals(self) -> set[str]:
        return {entry.principal for entry in self._entries}

    async def verify_token(self, token: str) -> AccessToken | None:
        self._refresh()
        presented = digest(token)
        found: Entry | None = None
        for entry in self._entries:  # every one, matched or not: see the module
            if hmac.compare_digest(entry.digest, presented):
                found = entry
        if found is None:
            return None
        # The digest stands in for the token: nothing of the server keeps a usable token.
        return AccessToken(token=f"sha256:{presented.hex()}", client_id=found.principal, scopes=[])

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._entries = read_tokens(self.path)
        except TokenFileError as exc:
            self._entries = []
            logger.error("%s; every token is refused until it is fixed", exc)
        else:
            logger.warning("token file %s read again: %d tokens", self.path, len(self._entries))


def add_token(path: Path, principal: str) -> str:
    """A new random token for ``principal``, its digest appended to the file (created 0600); the token
    itself is returned, to be shown once.

    Raises:
        ValueError: ``principal`` is not a name a line can hold.
        OSError: the file cannot be written.
    """
    if not PRINCIPAL.fullmatch(principal):
        raise ValueError(
            f"principal {principal!r} must start with a letter or digit and hold only letters, digits and "
            "._@+- (up to 128)"
        )
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as file:
        size = file.seek(0, os.SEEK_END)
        ends_line = size == 0 or os.pread(fd, 1, size - 1) == b"\n"
        line = f"{principal} sha256:{digest(token).hex()}\n".encode()
        file.write(line if ends_line else b"\n" + line)
    return token
