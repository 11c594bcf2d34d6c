"""Subagent prompts, following the pattern that works for parallel subagents.

The shared part (a fixed preamble and the spawn's shared context) comes first and is the same string for
every sibling, so the provider's prompt cache can serve it. The task's own part follows the template:
role, Task, Context, Files to work with, Output format, Focus areas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .files import FileText
from .requests import TaskRequest
from .shares import fair_shares

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


@dataclass(frozen=True, slots=True)
class TaskPrompt:
    """A task's own prompt, not yet written: it is written when the task starts. Until then the task
    holds its spawn's file texts by reference (one copy for every task that names a file), never a copy
    of its own, so what a queued spawn costs does not grow with the number of tasks sharing its files."""

    task: TaskRequest
    files: Mapping[str, FileText]  #: the spawn's files, the same mapping for every task of the spawn
    schema: Mapping[str, Any] | None

    def write(self) -> str:
        return build_prompt(self.task, self.files, self.schema)

    def own_bytes(self) -> int:
        """About what the task's own text takes (its files are the spawn's, counted once per spawn)."""
        task = self.task
        texts = (task.task, task.role, task.context, task.output_format, *task.focus_areas, *task.files)
        return sum(len(text) for text in texts if text)


def build_prompt(
    task: TaskRequest, files: Mapping[str, FileText], schema: Mapping[str, Any] | None = None
) -> str:
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
    if task.output_format or schema is not None:
        parts.append(_section("Output format", output_format(task.output_format, schema)))
    if task.focus_areas:
        parts.append(_section("Focus areas", "\n".join(f"- {area}" for area in task.focus_areas)))
    return "\n\n".join(parts)


def output_format(text: str | None, schema: Mapping[str, Any] | None) -> str:
    """The Output format section: the caller's text, and the schema an answer must match."""
    if schema is None:
        return text or ""
    wanted = (
        "Answer with only a JSON value that matches this JSON Schema, with no prose around it:\n"
        f"{json.dumps(schema, indent=1)}"
    )
    return f"{text.strip()}\n\n{wanted}" if text else wanted


def with_dependencies(prompt: str, results: Sequence[tuple[str, str, str]], budget: int) -> str:
    """The prompt with the answers of the tasks it depends on, as (task id, label, answer); together
    they get at most ``budget`` characters, shared fairly, and a cut answer says so."""
    texts = [answer.strip() for _, _, answer in results]
    shares = fair_shares([len(text) for text in texts], budget)
    blocks: list[str] = []
    for (task_id, label, _), text, share in zip(results, texts, shares, strict=True):
        note = ""
        if len(text) > share:
            note = f' note="cut: the first {share} of {len(text)} characters"'
            text = text[:share]
        blocks.append(f'<result task_id="{task_id}" label="{label}"{note}>\n{text}\n</result>')
    return f"{prompt}\n\n" + _section(
        "Results of the tasks this task depends on (they are finished; build on them)", "\n".join(blocks)
    )


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
