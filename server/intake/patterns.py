"""Regular expressions over text a caller or a subagent sent, matched by RE2 in time linear in the text.

Python's ``re`` backtracks: ``^(a+)+$`` takes about 2**n steps on n characters that almost match, and a
worker thread is no way out, since ``re`` holds the GIL while it matches. RE2 never backtracks (and
releases the GIL while it matches); it refuses what only backtracking can do: backreferences and
lookaround. ``Regex`` compiles RE2 syntax, for the server's own patterns; ``schema_pattern`` compiles a
JSON Schema pattern, which is written in ECMA 262's dialect, translated where RE2 reads it differently:

- ``.`` matches any character but a line terminator (``\\n``, ``\\r``, U+2028, U+2029), not only ``\\n``;
- ``\\s`` and ``\\S`` are ECMA's Unicode white space (U+00A0, U+FEFF, ``\\v``...), not ASCII only;
- ``\\uXXXX`` (a surrogate pair too), ``\\u{X...}``, ``\\cX``, ``\\0`` and ``[\\b]`` are the characters
  ECMA means; ``[^]`` is any character and ``[]`` none; ``[`` inside a class is a plain ``[``.

As in ECMA, ``\\d``, ``\\w`` and ``\\b`` are ASCII (Python's ``re`` made them Unicode), ``$`` is the end of
the text only, and a pattern matches anywhere in the text unless anchored. What is left differs little:
a pattern is read as Unicode code points (ECMA's ``u`` mode); counted repetitions stop at ``{1000}``;
``\\p{...}`` takes RE2's short names (``\\p{L}``, ``\\p{Greek}``), not ``\\p{Letter}``; and RE2 also accepts
some syntax ECMA does not (``(?i)``, ``(?P<name>...)``, ``\\A``, ``\\z``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import re2  # pyright: ignore[reportMissingTypeStubs]

# google-re2 ships no types: what this module uses of it is typed here, once.
_options: Callable[[], Any] = re2.Options
_compile: Callable[[bytes, Any], Any] = re2.compile  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
_Refused: type[Exception] = re2.error  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]

_MAX_CODE_POINT: Final = 0x10FFFF
#: ECMA 262's WhiteSpace and LineTerminator code points, as ranges.
_SPACES: Final = (
    (0x09, 0x0D),
    (0x20, 0x20),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
)


class PatternError(ValueError):
    """RE2 cannot compile the pattern; the message says why and what to write instead."""


class Regex:
    """A compiled RE2 pattern (RE2 syntax). Text is matched as UTF-8; a lone surrogate is kept as its bytes
    (it matches nothing that wants a character) rather than failing the match.

    Raises:
        PatternError: RE2 cannot compile it.
    """

    def __init__(self, pattern: str) -> None:
        options = _options()
        options.log_errors = False  # a refused pattern is the caller's problem, not a line on stderr
        try:
            self._compiled = _compile(_utf8(pattern), options)
        except _Refused as exc:
            raise PatternError(_explain(exc)) from None
        self.pattern = pattern

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text``."""
        return self._compiled.search(_utf8(text)) is not None

    def first(self, text: str, group: int = 0) -> str | None:
        """The text of ``group`` in the first match, or None (no match, or the group took no part)."""
        found: Any = self._compiled.search(_utf8(text))
        if found is None:
            return None
        value: bytes | None = found.group(group)
        return None if value is None else value.decode("utf-8", "surrogatepass")


@lru_cache(maxsize=256)
def schema_pattern(pattern: str) -> Regex:
    """A JSON Schema (ECMA 262) pattern, compiled once.

    Raises:
        PatternError: RE2 cannot compile it, even translated.
    """
    return Regex(_from_ecma(pattern))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _explain(exc: Exception) -> str:
    """RE2's complaint, and what to write instead."""
    said = exc.args[0] if exc.args else ""
    reason = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
    if "perl operator: (?=" in reason or "perl operator: (?!" in reason or "perl operator: (?<" in reason:
        return (
            f"{reason}: RE2 has no lookahead or lookbehind. Match the text itself instead, or state the "
            'exclusion with a separate keyword (e.g. "not": {"pattern": "..."})'
        )
    if "escape sequence: \\k" in reason or any(f"escape sequence: \\{d}" in reason for d in "123456789"):
        return f"{reason}: RE2 has no backreferences. Spell the repeated part out, or drop the check"
    if "repetition" in reason:
        return f"{reason}: RE2 counts repetitions up to {{1000}}; use + or * for longer runs"
    if "too large" in reason:
        return f"{reason}: the pattern is too big for RE2; use smaller counted repetitions"
    return f"{reason}: write it in the syntax ECMA 262 and RE2 share"


# --- ECMA 262 to RE2 --------------------------------------------------------------------------------


def _ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in ranges)


def _complement(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    gaps: list[tuple[int, int]] = []
    start = 0
    for lo, hi in ranges:
        if lo > start:
            gaps.append((start, lo - 1))
        start = hi + 1
    return (*gaps, (start, _MAX_CODE_POINT))


_SPACE: Final = _ranges(_SPACES)
_NOT_SPACE: Final = _ranges(_complement(_SPACES))
_ANY: Final = _ranges(((0, _MAX_CODE_POINT),))
_NOT_LINE_END: Final = r"[^\n\r\x{2028}\x{2029}]"


def _from_ecma(pattern: str) -> str:
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "\\":
            piece, i = _escape(pattern, i, in_class)
        elif in_class:
            in_class = char != "]"
            piece = "\\[" if char == "[" else char
        elif char == "[":
            piece, i, in_class = _open_class(pattern, i)
        else:
            piece = _NOT_LINE_END if char == "." else char
        out.append(piece)
    return "".join(out)


def _open_class(pattern: str, i: int) -> tuple[str, int, bool]:
    """The start of a class whose ``[`` ends at ``i``: ``[]`` (nothing) and ``[^]`` (anything) are whole."""
    if pattern.startswith("]", i):
        return f"[^{_ANY}]", i + 1, False
    if pattern.startswith("^]", i):
        return f"[{_ANY}]", i + 2, False
    if pattern.startswith("^", i):
        return "[^", i + 1, True
    return "[", i, True


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The escape whose backslash ends at ``i``, in RE2 syntax, and where it ends."""
    if i >= len(pattern):
        return "\\", i  # RE2 refuses a trailing backslash, as ECMA does
    char, after = pattern[i], i + 1
    if char in "sS":
        ranges = _SPACE if char == "s" else _NOT_SPACE
        return (ranges if in_class else f"[{ranges}]"), after
    if char == "u":
        return _unicode_escape(pattern, after)
    if char == "c" and after < len(pattern) and pattern[after].isascii() and pattern[after].isalpha():
        return f"\\x{{{ord(pattern[after]) % 32:x}}}", after + 1
    if char == "0" and not pattern[after : after + 1].isdigit():
        return "\\x{0}", after
    if char == "b" and in_class:
        return "\\x{8}", after
    return f"\\{char}", after  # the same in both, or refused by RE2 with its reason


def _unicode_escape(pattern: str, i: int) -> tuple[str, int]:
    """``\\u{X...}``, ``\\uXXXX`` or a surrogate pair of them, from ``i`` (after the ``u``)."""
    end = pattern.find("}", i)
    if pattern.startswith("{", i) and end > i and (code := _hex(pattern[i + 1 : end])) is not None:
        return f"\\x{{{code:x}}}", end + 1
    code = _hex(pattern[i : i + 4], 4)
    if code is None:
        return "u", i  # not an escape of a code point: ECMA reads a plain "u"
    i += 4
    low = _hex(pattern[i + 2 : i + 6], 4) if pattern.startswith("\\u", i) else None
    if 0xD800 <= code < 0xDC00 and low is not None and 0xDC00 <= low < 0xE000:
        code, i = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), i + 6
    return f"\\x{{{code:x}}}", i


def _hex(text: str, length: int | None = None) -> int | None:
    """The number ``text`` spells in hex digits (exactly ``length`` of them, if given), else None."""
    if not text or (length is not None and len(text) != length):
        return None
    if any(c not in "0123456789abcdefABCDEF" for c in text):
        return None
    return int(text, 16)
