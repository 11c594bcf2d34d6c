"""``run_parallel``: a fan-out and its synthesis in one call.

It is ``spawn_parallel``, then ``task_output`` and ``synthesize`` on the new group, within one bounded
wait. A client that runs tool calls as tasks (``tasks/``) gets a task handle instead, at once, and the
result when every task has ended and the synthesis is ready; any other client gets what is done within
the wait, with the group id and the call to make next.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from ..server import Settings
from ..server.intake.requests import (
    BudgetUsd,
    MaxConcurrency,
    SharedContext,
    SpawnBackend,
    SpawnEdit,
    SpawnOutputSchema,
    SpawnTools,
    Tasks,
)
from . import handlers
from .engine import runtime_of
from .handlers import Instructions, QuorumArg, WaitSeconds
from .result_models import Next, SynthesisResult, TaskOutputResult
from .results import LARGE_RESULT_CHARS, RESULT_SIZE_META, result
from .waiting import wait_budget

RunMode = Annotated[
    Literal["auto", "llm", "merge", "none"],
    Field(description="The synthesis, as synthesize's mode; 'none': the outputs only."),
]


class RunResult(BaseModel):
    """Returned by run_parallel."""

    group_id: Annotated[
        str, Field(description="Pass to task_output, synthesize, list_tasks or cancel_tasks.")
    ]
    done: Annotated[bool, Field(description="Every task has ended and the synthesis is ready.")]
    outputs: TaskOutputResult
    synthesis: SynthesisResult | None = None
    next: Next


async def run_parallel(
    tasks: Tasks,
    ctx: Context,
    shared_context: SharedContext = None,
    max_concurrency: Annotated[MaxConcurrency, Field(ge=1)] = None,
    output_schema: SpawnOutputSchema = None,
    budget_usd: Annotated[BudgetUsd, Field(gt=0)] = None,
    backend: SpawnBackend = None,
    tools: Annotated[SpawnTools, Field(max_length=1)] = [],  # noqa: B006  (pydantic copies defaults)
    edit: SpawnEdit = False,
    mode: RunMode = "auto",
    instructions: Instructions = None,
    quorum: QuorumArg = "any",
    wait_s: WaitSeconds = None,
) -> Annotated[types.CallToolResult, RunResult]:
    """Run independent subagent tasks in parallel and merge their answers, in one call: the tasks as
    spawn_parallel takes them, the synthesis as synthesize does.

    Clients that run tool calls as background tasks get every output and the synthesis when all is
    done. Others get what is done within wait_s: while done is false, follow next (task_output with
    wait_s, include="status" for $big_group tasks or more, then synthesize).
    """
    spawned = await handlers.spawn_parallel(
        tasks, ctx, shared_context, max_concurrency, output_schema, budget_usd, backend, tools, edit
    )
    group_id = cast(dict[str, Any], spawned.structured_content)["group_id"]
    seconds = wait_budget("run_parallel", (await runtime_of(ctx)).settings, wait_s)
    return await collect(ctx, group_id, mode, instructions, quorum, seconds)


async def collect(
    ctx: Context,
    group_id: str,
    mode: Literal["auto", "llm", "merge", "none"],
    instructions: str | None,
    quorum: Literal["any", "majority", "all"] | int,
    seconds: float,
) -> types.CallToolResult:
    """The group's outputs and its synthesis, waiting up to ``seconds`` in all.

    Raises:
        Refusal: the group is unknown (or no longer kept), or the synthesis cannot run as asked.
    """
    deadline = anyio.current_time() + seconds
    outputs = await handlers.task_output(ctx, group_id=group_id, wait_s=seconds)
    read = TaskOutputResult.model_validate(outputs.structured_content)
    synthesis: SynthesisResult | None = None
    texts = [_text(outputs)]
    if read.done and mode != "none":
        left = max(0.0, deadline - anyio.current_time())
        merged = await handlers.synthesize(
            ctx, group_id=group_id, instructions=instructions, mode=mode, quorum=quorum, wait_s=left
        )
        synthesis = SynthesisResult.model_validate(merged.structured_content)
        texts.append(_text(merged))
    done = read.done and (synthesis is None or synthesis.done)
    next_call = _next(group_id, read, synthesis, mode)
    answer = RunResult(
        group_id=group_id,
        done=done,
        # One next call for the run: the outputs' own would say to synthesize what is synthesized.
        outputs=read.model_copy(update={"next": next_call}),
        synthesis=synthesis,
        next=next_call,
    )
    return result(answer, "\n\n".join([f"Group {group_id}.", *texts, f"Next: {answer.next}"]))


def _next(group_id: str, read: TaskOutputResult, synthesis: SynthesisResult | None, mode: str) -> str:
    group = f'group_id="{group_id}"'
    if not read.done:
        merge = "" if mode == "none" else f", then synthesize({group})"
        return f"task_output({group}) to wait for the tasks still running{merge}. {read.next}"
    if synthesis is None:
        return read.next
    if any(task.truncated for task in read.tasks):  # the synthesis read them whole; the model did not
        return (
            f"{synthesis.next} Outputs cut short here: task_output(task_ids=[that id], offset=next_offset)."
        )
    return synthesis.next


def _text(answer: types.CallToolResult) -> str:
    """A tool result's text without its ``Next:`` line (the run's own comes last)."""
    text = "".join(block.text for block in answer.content if isinstance(block, types.TextContent))
    head, found, _ = text.rpartition("\n\nNext: ")
    return head if found else text


def register(mcp: MCPServer[Any], settings: Settings) -> None:
    """Add run_parallel to ``mcp``."""
    mcp.add_tool(
        run_parallel,
        title="Run parallel subagents and merge their answers",
        annotations=types.ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        ),
        # As task_output's: the outputs a run returns are task_output's page of them.
        meta={RESULT_SIZE_META: max(settings.max_output_chars, LARGE_RESULT_CHARS)},
    )
