"""The tool list: what a client puts in its model's prompt (names, descriptions, input schemas) and the
whole tools/list answer, as the installed server sends it over stdio with its default settings.

Targets: the prompt part at most 3,690 tokens (characters / 4), the whole answer at most 20,900
characters (2,000 and 12,000 for the first five tools; 2,125 and 13,000 with retry_tasks; edit tasks then
added apply_changes, spawn_parallel's edit and scope and task_output's include="patch", and run_parallel
takes spawn_parallel's arguments again; a task's verify, twice, about 280 more; apply_changes' resolve 124). Sizes, not timings: one run says it.

    .venv/bin/python bench/toollist.py
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SCRIPT, server_env, table

PROMPT_TOKENS = 3_690
LIST_CHARS = 20_900


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def listed() -> list[dict[str, Any]]:
    """Every tool as the server sends it, with its default settings and the repository as its root."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=str(SCRIPT), args=["--root", str(REPO)], env=server_env("http://127.0.0.1:9")
    )
    async with Client(params, mode="legacy") as client:
        tools = (await client.list_tools()).tools
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


def scenario() -> dict[str, Any]:
    tools = asyncio.run(listed())
    parts = {
        t["name"]: (
            len(t.get("description", "")),
            len(compact(t["inputSchema"])),
            len(compact(t.get("outputSchema"))),
        )
        for t in tools
    }
    prompt = sum(len(name) + description + inputs for name, (description, inputs, _) in parts.items())
    whole = len(compact({"tools": tools}))
    rows = [
        [f"`{name}`", description, inputs, outputs] for name, (description, inputs, outputs) in parts.items()
    ]
    targets = [
        ["names + descriptions + input schemas", f"{prompt:,} characters, {prompt / 4:,.0f} tokens",
         f"at most {PROMPT_TOKENS:,} tokens", verdict(prompt / 4 <= PROMPT_TOKENS)],
        ["the whole tools/list", f"{whole:,} characters", f"at most {LIST_CHARS:,} characters",
         verdict(whole <= LIST_CHARS)],
    ]  # fmt: skip
    markdown = (
        table(["size", "measured", "target", ""], targets)
        + "\n\n"
        + table(["tool", "description chars", "input schema chars", "output schema chars"], rows)
    )
    return {"prompt_chars": prompt, "prompt_tokens": prompt / 4, "list_chars": whole, "tools": parts,
            "markdown": markdown}  # fmt: skip


def verdict(met: bool) -> str:
    return "met" if met else "not met"


def main() -> None:
    print(scenario()["markdown"])


if __name__ == "__main__":
    main()
