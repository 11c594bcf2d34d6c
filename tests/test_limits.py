"""The code stays small enough to read: no module of the server or the MCP layer over 400 lines and no
function over 40 (its docstring not counted: a tool's docstring is the calling model's prompt). Each
function's cyclomatic complexity (at most 10) is ruff's C901, set in pyproject.toml."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "server").rglob("*.py"), *(REPO / "tools").rglob("*.py")])
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40


def function_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from ``def`` to the end, less the docstring's."""
    lines = (function.end_lineno or function.lineno) - function.lineno + 1
    first = function.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines -= (first.end_lineno or first.lineno) - first.lineno + 1
    return lines


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n for p in SOURCES if (n := p.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert not long, f"split these by job: {long}"


def test_no_function_is_over_40_lines_besides_its_docstring() -> None:
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({function_lines(node)} lines)"
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and function_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


def test_the_counter_counts_a_long_function_and_not_its_docstring() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    doc = '    """' + "\n" * 50 + '    """\n'
    (long,) = ast.parse(f"def f():\n{body}\n").body
    (documented,) = ast.parse(f"def g():\n{doc}    return 1\n").body
    assert isinstance(long, ast.FunctionDef) and function_lines(long) == MAX_FUNCTION_LINES + 1
    assert isinstance(documented, ast.FunctionDef) and function_lines(documented) == 2


def test_ruff_holds_every_function_to_complexity_10() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "C901" in config["select"] and config["mccabe"]["max-complexity"] == 10
