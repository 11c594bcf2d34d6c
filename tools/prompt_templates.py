"""The parallel patterns as MCP prompts: each returns the instructions a model needs to plan a fan-out,
start it with spawn_parallel, collect it and synthesise it, with the checks to make first."""

import json
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt
from mcp_types import INVALID_PARAMS
from pydantic import Field

from ..server import FanoutError
from ..server.intake.files import FileReader
from .engine import runtime_of

_FILES_PER_DIRECTORY = 40
_DEFAULT_PERSPECTIVES = "security, performance, testing, architecture"

CHECKS = """\
Before you spawn, check that the parts really are independent:
- no part needs another part's result (if one does, give it depends_on with the other's label instead);
- the parts touch different files or different concerns, and none of them edits what another reads;
- the order in which they finish does not matter.
If these do not hold, do the work one step after another instead."""

COLLECT = """\
Then collect and merge:
1. Call task_output(group_id=...) and keep calling it while done is false (each call waits for them,
   but returns before a client's timeout; running tasks show their partial output). Each result's
   next says what to call next.
2. Call synthesize(group_id=...) to merge the answers: duplicates once, conflicts with both sides,
   priorities, actions, and every task without an answer listed under missing."""


def _invalid(message: str) -> MCPError:
    # An MCPError reaches the client as it is; any other exception becomes "Error rendering prompt".
    return MCPError(code=INVALID_PARAMS, message=message)


def parallel_tasks(
    items: Annotated[str, Field(description="The work items, one per line.")],
    goal: Annotated[str, Field(description="What the items add up to (goes in shared_context).")] = "",
    role: Annotated[str, Field(description="The specialist role for every item, if one fits all.")] = "",
) -> str:
    """Split a list of independent work items into parallel subagent tasks."""
    work = [line.strip(" -*\t") for line in items.splitlines() if line.strip(" -*\t")]
    if not work:
        raise _invalid("items is empty: give the work items, one per line")
    role_line = f'"role": {json.dumps(role or "<the specialist for this item>")}, '
    tasks = ",\n".join(
        f'    {{"label": "item {i}", {role_line}"task": {json.dumps(item)}}}'
        for i, item in enumerate(work, 1)
    )
    shared = json.dumps(goal or "<what every item needs to know: the goal, conventions, constraints>")
    return f"""\
Run these {len(work)} work items as parallel subagents with fanout.

{CHECKS}

Call spawn_parallel once, with one task per item. Each task must be complete on its own: say exactly
what to do, name the files it needs in "files", and say what to return in "output_format" (the same
format for every task makes the answers easy to merge).
{{"shared_context": {shared},
 "tasks": [
{tasks}
 ]}}

{COLLECT}"""


async def parallel_directories(
    path: Annotated[str, Field(description="The directory whose subdirectories each get a subagent.")],
    task: Annotated[str, Field(description="What to do in each directory, e.g. 'review for bugs'.")],
    ctx: Context,
) -> str:
    """One subagent per directory of a path (inside the server's roots), with the files each will read."""
    files = (await runtime_of(ctx)).files
    try:
        root = files.check_directory(path)
    except FanoutError as exc:
        raise _invalid(str(exc)) from None
    directories = await anyio.to_thread.run_sync(files.subdirectories, root) or [root]
    limit = (await runtime_of(ctx)).settings.max_tasks_per_spawn
    skipped = ""
    if len(directories) > limit:
        skipped = (
            f"\n(There are {len(directories)} directories; only the first {limit} are listed, as many as one "
            "spawn may start. Run the rest in another spawn, or pick a deeper path.)"
        )
        directories = directories[:limit]
    entries = [await _entry(files, directory) for directory in directories]
    return f"""\
Run "{task}" over {_count(len(directories), "directory", "directories")} of {files.shown(root)} as parallel \
subagents with fanout: one task per directory.

{CHECKS}

The directories, with the files the server can read for each:
{chr(10).join(entries)}{skipped}

Call spawn_parallel once, with one task per directory: "label" the directory, "task" = "{task}" for
that directory, "files" = its list above (drop what the task does not need), and the same
"output_format" for every task (or "output_schema": "findings" for reviews, which synthesize can merge
without a model).

{COLLECT}"""


async def _entry(files: FileReader, directory: Path) -> str:
    """A directory's line of the prompt: the files the server can read in it, as a task's ``files``."""
    listed, total = await anyio.to_thread.run_sync(files.files_under, directory, _FILES_PER_DIRECTORY)
    more = ""
    if total > len(listed):
        more = f"  (first {len(listed)} of {total} files: narrow the task or split it)"
    return f"- {files.shown(directory)}: {len(listed)} file(s){more}\n  files: {json.dumps(listed)}"


def parallel_perspectives(
    target: Annotated[str, Field(description="What to review: a feature, a change, a module.")],
    files: Annotated[str, Field(description="The files to review, separated by commas or lines.")] = "",
    perspectives: Annotated[str, Field(description="Comma-separated perspectives.")] = _DEFAULT_PERSPECTIVES,
) -> str:
    """Review one target from several perspectives in parallel, with findings output and a merge."""
    views = [p.strip() for p in perspectives.replace("\n", ",").split(",") if p.strip()]
    if not views:
        raise _invalid("perspectives is empty: give at least one, e.g. 'security, performance'")
    paths = [p.strip() for p in files.replace("\n", ",").split(",") if p.strip()]
    tasks = ",\n".join(
        "    "
        + json.dumps(
            {
                "label": view,
                "role": f"{view} reviewer",
                "task": f"Review {target} from the {view} perspective only.",
                "files": paths,
            }
        )
        for view in views
    )
    return f"""\
Review {target} from {len(views)} perspectives ({", ".join(views)}) as parallel subagents with fanout.

{CHECKS}
(The perspectives read the same files but answer different questions, so they are independent.)

Call spawn_parallel once. Every task answers in the built-in "findings" schema (title, severity,
location, detail, recommendation, confidence), so the answers can be merged without a model:
{{"shared_context": "<what the code is for, and what matters in this review>",
 "output_schema": "findings",
 "tasks": [
{tasks}
 ]}}

{COLLECT}
For a review, synthesize(group_id=..., mode="merge") merges the findings deterministically: the same
problem at the same place once (with every perspective that found it), severity disagreements and
contradicting recommendations shown as conflicts, ranked by severity then support. Use
quorum="majority" to keep only what most perspectives found, or mode="llm" for a written synthesis."""


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def register_prompts(mcp: MCPServer[Any]) -> None:
    for fn, title in [
        (parallel_tasks, "Parallel tasks"),
        (parallel_directories, "Parallel directories"),
        (parallel_perspectives, "Parallel perspectives"),
    ]:
        mcp.add_prompt(Prompt.from_function(fn, title=title))
