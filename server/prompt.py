"""Subagent prompts, following the pattern that works for parallel subagents.

The shared part (a fixed preamble and the spawn's shared context) comes first and is the same string for
every sibling, so the provider's prompt cache can serve it. The task's own part follows the template:
role, Task, Context, Files to work with, Output format, Focus areas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from fanout_mcp.server.files import FileText
from fanout_mcp.server.models import TaskRequest

PREAMBLE: Final = (
    "You are one of several subagents working in parallel, each on an independent part of a larger job. "
    "Do only the task you are given, completely, and answer with the result itself, not a description of "
    "it. Your answer will be merged with the other subagents' answers: be specific (name files, lines and "
    "evidence), keep to the requested output format, and say how sure you are where it matters."
)

# Characters per token, for deciding whether shared context is long enough to be worth caching.
# An estimate only: English prose runs about 4, code about 3.
CHARS_PER_TOKEN: Final = 4


def build_system(shared_context: str | None) -> str:
    """The block every task of a spawn starts with."""
    if not shared_context:
        return PREAMBLE
    return f"{PREAMBLE}\n\n<shared_context>\n{shared_context}\n</shared_context>"


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN


def build_prompt(task: TaskRequest, files: Mapping[str, FileText]) -> str:
    """The task's own instructions, with the contents of its files."""
    role = (
        f"You are a {task.role} specialist for this specific task."
        if task.role
        else ("You are a specialist for this specific task.")
    )
    parts = [role, _section("Task", task.task)]
    if task.context:
        parts.append(_section("Context", task.context))
    if task.files:
        parts.append(_section("Files to work with", _render_files([files[p] for p in task.files])))
    if task.output_format:
        parts.append(_section("Output format", task.output_format))
    if task.focus_areas:
        parts.append(_section("Focus areas", "\n".join(f"- {area}" for area in task.focus_areas)))
    return "\n\n".join(parts)


def _section(title: str, body: str) -> str:
    return f"{title}:\n{body.strip()}"


def _render_files(files: Sequence[FileText]) -> str:
    rendered: list[str] = []
    for file in files:
        note = ""
        if file.truncated:
            note = f' note="cut: the first {file.shown} of {file.size} bytes are shown"'
        body = file.text if file.text.endswith("\n") or not file.text else file.text + "\n"
        rendered.append(f'<file path="{file.path}"{note}>\n{body}</file>')
    return "\n".join(rendered)
