"""The read-only workspace tools: bounded answers inside the roots, and readable refusals outside them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.backends import workspace as workspace_module
from server.backends.workspace import MAX_ANSWER_CHARS, Workspace
from server.intake import files as files_module
from server.intake.files import FileReader


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "app.py").write_text("".join(f"line {i} of app\n" for i in range(1, 101)))
    (root / "src" / "pkg" / "util.py").write_text("def helper():\n    return 'TODO: tidy'\n")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "dep.js").write_text("TODO in a dependency\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    return root


@pytest.fixture
def workspace(root: Path) -> Workspace:
    return Workspace(FileReader([root], max_file_bytes=200_000))


def test_list_files_shows_paths_from_the_root_without_generated_directories(workspace: Workspace) -> None:
    answer = workspace.call("list_files", {})
    assert not answer.is_error
    assert answer.text.splitlines() == ["logo.png", "src/app.py", "src/pkg/util.py"]
    assert workspace.call("list_files", {"path": "src/pkg"}).text == "src/pkg/util.py"


def test_read_file_numbers_lines_and_reads_a_range(workspace: Workspace) -> None:
    answer = workspace.call("read_file", {"path": "src/app.py", "start_line": 10, "end_line": 12})
    assert answer.text == "10: line 10 of app\n11: line 11 of app\n12: line 12 of app"


def test_a_long_file_comes_in_parts_that_say_where_to_continue(root: Path, workspace: Workspace) -> None:
    (root / "big.txt").write_text("".join(f"{'x' * 90} {i}\n" for i in range(1, 2001)))
    first = workspace.call("read_file", {"path": "big.txt"})
    assert len(first.text) <= MAX_ANSWER_CHARS
    next_line = int(first.text.rsplit("start_line ", 1)[1].split()[0])
    second = workspace.call("read_file", {"path": "big.txt", "start_line": next_line})
    assert second.text.startswith(f"{next_line}: ")


def test_search_text_finds_lines_with_their_place_and_skips_generated_directories(
    workspace: Workspace,
) -> None:
    answer = workspace.call("search_text", {"text": "todo", "ignore_case": True})
    assert answer.text.splitlines() == [
        "src/pkg/util.py:2: return 'TODO: tidy'",
        "[searched 2 files; not searched: 1 binary file (logo.png)]",
    ]
    assert workspace.call("search_text", {"text": "TODO", "path": "src"}).text == (
        "src/pkg/util.py:2: return 'TODO: tidy'"
    )
    assert workspace.call("search_text", {"text": "TODO", "path": "src/app.py"}).text == (
        "no line contains 'TODO' (searched 1 file)"
    )


def test_search_text_reads_a_file_over_a_megabyte_to_its_end(root: Path, workspace: Workspace) -> None:
    lines = [f"log line {i:05d} of the payment service" for i in range(1, 40_006)]
    lines[40_000] = "the needle is here"
    (root / "big.log").write_text("\n".join(lines) + "\n")
    assert (root / "big.log").stat().st_size > 1_300_000
    answer = workspace.call("search_text", {"text": "needle", "path": "big.log"})
    assert answer.text == "big.log:40001: the needle is here"


def test_a_line_longer_than_a_read_piece_is_searched_across_pieces_under_its_own_number(
    root: Path, workspace: Workspace
) -> None:
    piece = workspace_module._PIECE  # pyright: ignore[reportPrivateUsage]
    long_line = "x" * (piece - 3) + "needle" + "y" * piece  # the needle straddles two pieces
    (root / "minified.js").write_text(f"first\n{long_line}\nlast needle\n")
    hits = workspace.call("search_text", {"text": "needle", "path": "minified.js"}).text.splitlines()
    assert [hit.split(":")[1] for hit in hits] == ["2", "3"]


def test_a_search_that_reads_its_byte_budget_says_what_it_did_not_search(
    root: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace_module, "SEARCH_BUDGET_BYTES", 1_000)
    (root / "logs").mkdir()
    (root / "logs" / "a.log").write_text("nothing here\n" * 50)  # 650 bytes
    (root / "logs" / "b.log").write_text("nothing here\n" * 100 + "needle\n")  # its end is past the budget
    (root / "logs" / "c.log").write_text("needle\n")
    answer = workspace.call("search_text", {"text": "needle", "path": "logs"})
    assert answer.text.splitlines() == [
        "no line contains 'needle'",
        "[searched 2 files; not searched: the rest of logs/b.log from line 28, 1 more file (logs/c.log) "
        "(one search reads at most 1,000 bytes: search a narrower path)]",
    ]


def test_a_search_over_more_files_than_it_opens_says_how_many_it_left(
    root: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace_module, "MAX_SEARCHED_FILES", 2)
    answer = workspace.call("search_text", {"text": "TODO", "path": "."})
    assert answer.text.splitlines() == [
        "no line contains 'TODO'",
        "[searched 1 file; not searched: 1 binary file (logo.png); "
        "1 file past the first 2 below . (search a narrower path)]",
    ]


@pytest.mark.parametrize("separator", ["\f", "\v", "\x1c", "\x85", "\u2028", "\r"])
def test_lines_are_numbered_as_grep_numbers_them(root: Path, workspace: Workspace, separator: str) -> None:
    (root / "odd.txt").write_text(f"one{separator}still one\r\ntwo\nthree needle\n", newline="")
    read = workspace.call("read_file", {"path": "odd.txt", "start_line": 2})
    assert read.text == "2: two\n3: three needle"
    whole = workspace.call("read_file", {"path": "odd.txt"}).text
    assert whole.splitlines()[0] == f"1: one{separator}still one".splitlines()[0]
    assert whole.count("\n") == 2  # three numbered lines
    search = workspace.call("search_text", {"text": "needle", "path": "odd.txt"})
    assert search.text == "odd.txt:3: three needle"


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd"])
def test_a_path_outside_the_root_is_refused_with_a_reason(workspace: Workspace, path: str) -> None:
    answer = workspace.call("read_file", {"path": path})
    assert answer.is_error and "outside the allowed roots" in answer.text


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path, workspace: Workspace) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read\n")
    (root / "innocent.txt").symlink_to(secret)
    answer = workspace.call("read_file", {"path": "innocent.txt"})
    assert answer.is_error and "outside the allowed roots" in answer.text
    answer = workspace.call("search_text", {"text": "not read"})
    assert answer.text.splitlines()[0] == "no line contains 'not read'"
    assert "innocent.txt" not in answer.text  # a symlink out is not followed, so not even listed


def test_a_binary_file_is_refused(workspace: Workspace) -> None:
    answer = workspace.call("read_file", {"path": "logo.png"})
    assert answer.is_error and "looks binary" in answer.text


def test_a_fifty_megabyte_file_is_refused_without_being_read(root: Path, workspace: Workspace) -> None:
    with (root / "huge.log").open("wb") as huge:
        huge.truncate(50 * 1024 * 1024)  # sparse: its size without writing it
    answer = workspace.call("read_file", {"path": "huge.log"})
    assert answer.is_error and "52,428,800 bytes" in answer.text and "search_text" in answer.text


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("write_file", {"path": "x"}, "no tool 'write_file'"),
        ("read_file", {"path": 3}, "path must be a string"),
        ("read_file", {"path": "src/app.py", "start_line": 0}, "start_line must be a line number"),
        ("read_file", {"path": "src/app.py", "start_line": 500}, "has 100 lines"),
        ("read_file", {"path": "src"}, "is a directory"),
        ("list_files", {"path": "nowhere"}, "is not a directory"),
        ("search_text", {"text": ""}, "text is empty"),
    ],
)
def test_bad_arguments_get_an_answer_that_says_what_to_do(
    workspace: Workspace, name: str, arguments: dict[str, object], problem: str
) -> None:
    answer = workspace.call(name, arguments)
    assert answer.is_error and problem in answer.text


def test_tool_uses_are_described_in_one_short_line() -> None:
    assert Workspace.describe("read_file", {"path": "a.py", "start_line": 3}) == "read_file a.py:3-"
    assert Workspace.describe("search_text", {"text": "x", "path": "src"}) == "search_text 'x' in src"
    assert Workspace.describe("list_files", {}) == "list_files ."


def test_no_roots_means_no_reading(tmp_path: Path) -> None:
    answer = Workspace(FileReader([], max_file_bytes=1000)).call("list_files", {})
    assert answer.is_error and "no allowed roots" in answer.text
    assert not os.listdir(tmp_path)


def test_past_the_count_limit_the_files_left_out_are_said_as_a_lower_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in "abc":
        (tmp_path / folder).mkdir()
        for i in range(3):
            (tmp_path / folder / f"{i}.txt").write_text("nothing here\n")
    monkeypatch.setattr(workspace_module, "MAX_SEARCHED_FILES", 2)
    monkeypatch.setattr(workspace_module, "COUNT_LIMIT", 4)
    monkeypatch.setattr(files_module, "COUNT_LIMIT", 4)  # the walk stops counting after the folder at 4
    workspace = Workspace(FileReader((tmp_path,), max_file_bytes=1_000_000))
    searched = workspace.call("search_text", {"text": "TODO", "path": "."})
    listed = workspace.call("list_files", {"path": "."})
    assert "at least 4 files past the first 2 below ." in searched.text
    assert len(listed.text.splitlines()) == 6 and "at least" not in listed.text  # 6 < 500 listed: all
