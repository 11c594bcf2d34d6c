"""The fan-out scenario through mcp-agent 0.2.6's ParallelLLM (the peer), for bench/fanout.py.

Run with the peer venv (python3 bench/peer/setup.py prints its python):

    ANTHROPIC_BASE_URL=http://127.0.0.1:PORT ANTHROPIC_API_KEY=any \
        bench/peer/.venv/bin/python bench/peer/mcpagent_client.py --n 100 [--words 200]

Builds an MCPApp (settings passed in code, so no mcp_agent.config.yaml is read or written), N agents
with no MCP servers, each with its own AnthropicAugmentedLLM, and a ParallelLLM whose fan-in is a plain
async function that returns the fan-out responses (no aggregator model call). Then it times only
`ParallelLLM.generate("[[words:W]] subtask", ...)`, which makes N concurrent non-streamed
`messages.create()` calls, and prints ONE JSON line on stdout:
    {"wall": s, "cpu": process CPU s, "ok": answers that are exactly the fake's W words, "n": N, ...}
Everything else (mcp-agent's logging, warnings) goes to stderr.

--agents prebuilt (default): the agents are entered and their LLMs attached before the clock, and
    the ParallelLLM gets the AugmentedLLMs, so the timed span is the fan-out calls alone.
--agents entered: the ParallelLLM gets the Agent objects and an llm_factory, as mcp-agent's examples
    do; each generate() then enters every agent, attaches its LLM and shuts it down inside the timed
    span (this includes a fixed 0.5 s sleep in MCPConnectionManager.close when the last agent exits).

mcp-agent builds a new AsyncAnthropic per call and ignores config base_url, so the fake is reached
through ANTHROPIC_BASE_URL (or --url, which sets it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from anthropic.types import Message, MessageParam
    from mcp_agent.workflows.llm.augmented_llm import AugmentedLLM
    from mcp_agent.workflows.parallel.fan_in import FanInInput

# Everything printed to fd 1 (Python or C level) goes to stderr; only the result line goes to stdout.
_RESULT_OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, required=True, help="fan-out width (number of agents)")
    parser.add_argument("--words", type=int, default=200, help="words each answer should have")
    parser.add_argument("--model", default="claude-sonnet-4-6")
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--url", help="the fake's base URL (default: $ANTHROPIC_BASE_URL)")
    parser.add_argument("--agents", choices=["prebuilt", "entered"], default="prebuilt")
    return parser.parse_args()


def answer_text(response: list[Message] | BaseException) -> str:
    """The text of one agent's responses (a list of anthropic Messages); "" for an error."""
    if isinstance(response, BaseException):
        return ""
    return "".join(block.text for message in response for block in message.content if block.type == "text")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from mcp_agent.agents.agent import Agent
    from mcp_agent.app import MCPApp
    from mcp_agent.config import (
        AnthropicSettings,
        LoggerSettings,
        MCPSettings,
        OpenTelemetrySettings,
        Settings,
        UsageTelemetrySettings,
    )
    from mcp_agent.workflows.llm.augmented_llm import RequestParams
    from mcp_agent.workflows.llm.augmented_llm_anthropic import AnthropicAugmentedLLM
    from mcp_agent.workflows.parallel.parallel_llm import ParallelLLM

    # The same as an mcp_agent.config.yaml with: execution_engine: asyncio, logger.type: none,
    # otel.enabled: false, usage_telemetry.enabled: false, mcp.servers: {}, anthropic.api_key/default_model.
    settings = Settings(
        execution_engine="asyncio",
        logger=LoggerSettings(type="none", transports=["none"], level="error", progress_display=False),
        otel=OpenTelemetrySettings(enabled=False),
        usage_telemetry=UsageTelemetrySettings(enabled=False),
        mcp=MCPSettings(servers={}),
        anthropic=AnthropicSettings(api_key=os.environ["ANTHROPIC_API_KEY"], default_model=args.model),
    )
    app = MCPApp(name="fanout_peer", settings=settings)

    async def fan_in(responses: FanInInput[Message, MessageParam]) -> FanInInput[Message, MessageParam]:
        return responses  # no aggregator LLM: the fan-out answers are the result

    params = RequestParams(model=args.model, maxTokens=args.max_tokens, use_history=False, max_iterations=1)
    prompt = f"[[words:{args.words}]] subtask"

    async with app.run() as running, contextlib.AsyncExitStack() as stack:
        context = running.context
        # A distinct instruction (system prompt) per agent, so each request is a distinct one.
        agents = [
            Agent(name=f"fanout_{i}", instruction=f"You are subagent {i}.", server_names=[], context=context)
            for i in range(args.n)
        ]
        if args.agents == "prebuilt":
            fan_out: list[Agent | AugmentedLLM[MessageParam, Message]] = []
            for agent in agents:
                await stack.enter_async_context(agent)
                fan_out.append(await agent.attach_llm(AnthropicAugmentedLLM))
        else:
            fan_out = list(agents)
        parallel: ParallelLLM[MessageParam, Message] = ParallelLLM(
            fan_in_agent=fan_in, fan_out_agents=fan_out, llm_factory=AnthropicAugmentedLLM, context=context
        )

        started, cpu = time.perf_counter(), time.process_time()
        # What fan_in returned: each agent's messages by its name, or the exception its call raised
        # (mcp-agent's executor returns exceptions in place of results).
        responses = cast(
            "dict[str, list[Message] | BaseException]",
            await parallel.generate(prompt, request_params=params),
        )
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu

    expected = " ".join(f"w{i}" for i in range(1, args.words + 1))  # the fake's answer, exactly
    ok = sum(1 for r in responses.values() if answer_text(r) == expected)
    errors = [repr(r)[:300] for r in responses.values() if isinstance(r, BaseException)]
    for error in errors[:3]:
        print(f"mcpagent_client: fan-out error: {error}", file=sys.stderr)
    return {"wall": wall, "cpu": cpu, "ok": ok, "n": args.n, "agents": args.agents, "errors": len(errors)}


def main() -> None:
    args = parse_args()
    if args.url:
        os.environ["ANTHROPIC_BASE_URL"] = args.url
    if not os.environ.get("ANTHROPIC_BASE_URL"):
        print("mcpagent_client: set ANTHROPIC_BASE_URL (or --url) to the fake's URL", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench-key")
    if args.n < 1:
        print("mcpagent_client: --n must be >= 1", file=sys.stderr)
        sys.exit(2)
    result = asyncio.run(run(args))
    _RESULT_OUT.write(json.dumps(result) + "\n")
    _RESULT_OUT.flush()


if __name__ == "__main__":
    main()
