"""The read-only workspace tools: bounded answers inside the roots, and readable refusals outside them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fanout_mcp.server.files import FileReader
from fanout_mcp.server.workspace import MAX_ANSWER_CHARS, Workspace


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
    assert answer.text == "src/pkg/util.py:2: return 'TODO: tidy'"
    assert "no line contains" in workspace.call("search_text", {"text": "todo"}).text


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
    assert workspace.call("search_text", {"text": "not read"}).text == "no line contains 'not read'"


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
