"""JSON Schema patterns run by RE2: ECMA 262's meaning where RE2 reads a pattern differently, a clear
refusal of what RE2 cannot run, and time linear in the text."""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest

from server.intake.patterns import PatternError, Regex, schema_pattern

ECMA: list[tuple[str, str, bool]] = [
    ("b", "abc", True),  # anywhere in the text, unless anchored
    ("^b", "abc", False),
    ("a$", "a\n", False),  # $ is the end of the text, not before a last newline
    ("^\\d+$", "2024", True),
    ("^\\d+$", "٢٠٢٤", False),  # \d, \w and \b are ASCII, as in ECMA (Python's re said yes)
    ("^\\w+$", "é", False),
    ("^\\s$", "\u00a0", True),  # \s is ECMA's Unicode white space (RE2's own is ASCII)
    ("^\\s$", "\ufeff", True),
    ("^\\s$", "\v", True),
    ("^\\S$", "\u3000", False),
    ("^[\\S]$", "x", True),
    ("^[^\\s]$", "\u2028", False),
    ("^.$", "\u2028", False),  # . stops at every line terminator, not only \n
    ("^.$", "\r", False),
    ("^.$", "😀", True),  # one code point, not two UTF-16 units
    ("^[.]$", "x", False),
    ("^\\u00e9$", "é", True),
    ("^\\uD83D\\uDE00$", "😀", True),  # a surrogate pair is one character
    ("^\\u{1F600}$", "😀", True),
    ("^\\u$", "u", True),  # not a code point escape: a plain u
    ("^\\cJ$", "\n", True),
    ("^\\0$", "\0", True),
    ("^[\\b]$", "\b", True),
    ("^[^]$", "\n", True),  # [^] is any character, [] none
    ("[]", "anything", False),
    ("^[[]$", "[", True),
    ("^[a-z]{2,3}$", "abcd", False),
    ("(?<year>\\d{4})", "in 2024", True),
]


@pytest.mark.parametrize(("pattern", "text", "matches"), ECMA)
def test_a_pattern_means_what_ecma_262_says(pattern: str, text: str, matches: bool) -> None:
    assert schema_pattern(pattern).search(text) is matches


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=a)", "no lookahead or lookbehind"),
        ("(?<!a)b", "no lookahead or lookbehind"),
        ("(a)\\1", "no backreferences"),
        ("(?<x>a)\\k<x>", "no backreferences"),
        ("a{1001}", "up to {1000}"),
        ("\\p{L}{1,1000}", "too big for RE2"),
        ("(a", "missing ): (a: write it in the syntax ECMA 262 and RE2 share"),
    ],
)
def test_what_re2_cannot_run_is_refused_with_the_reason_and_what_to_do(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as refused:
        schema_pattern(pattern)
    assert reason in str(refused.value)


async def test_a_pattern_that_backtracks_in_python_takes_time_linear_in_the_text() -> None:
    # 2**40 steps for Python's re, which holds the GIL meanwhile: the loop could not even time out.
    with anyio.fail_after(5):
        found = await anyio.to_thread.run_sync(schema_pattern("^(a+)+$").search, "a" * 40 + "!")
    assert found is False


def test_text_with_a_lone_surrogate_is_matched_not_refused() -> None:
    assert schema_pattern("^a").search("a\ud800") is True
    assert Regex("(.)x").first("\ud800x", 1) == "\ud800"
