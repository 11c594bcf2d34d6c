"""The ``fanout-mcp`` command: serve MCP over stdio (the default), or run a plan file."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from fanout_mcp.server import (
    OPTIONS,
    FanoutError,
    Settings,
    SettingsError,
    TaskSnapshot,
    load_settings,
    open_runtime,
)
from fanout_mcp.server.checkup import check
from fanout_mcp.server.commands import CommandSpec
from fanout_mcp.server.plan import Plan, PlanOutcome, load_plan, run_plan
from fanout_mcp.server.secrecy import seal
from fanout_mcp.tools.app import create_server, package_version
from fanout_mcp.tools.shape import describe_usage
from fanout_mcp.tools.signals import Stopped, until_signalled
from fanout_mcp.tools.stdio import serve_stdio

_ENVIRONMENT_HELP = """\
environment:
  ANTHROPIC_API_KEY      API key for the Messages API and batches (or ANTHROPIC_AUTH_TOKEN); without
                         one, tasks run on the claude CLI if it is on PATH, else on the client's model
                         (sampling) if it offers it; `fanout-mcp doctor` says which can run here
  ANTHROPIC_BASE_URL     another Messages API endpoint (a proxy, a gateway, a local fake)
{settings}

configuration file (--config FILE, TOML or JSON):
  every setting above under its file key (see the README's table), plus one table per agent
  command, [commands.NAME], with the keys:
{command_keys}
  A preset (claude, codex) can be changed the same way. The README's "Backends" section
  explains each key; a bad file stops the server with the file, the key and the problem.

Logs go to stderr only: stdout carries the MCP protocol. Closing stdin, SIGTERM, SIGINT and SIGHUP
stop the server alike: every unfinished task is cancelled and every agent CLI ended with all it started.
"""


def build_parser() -> argparse.ArgumentParser:
    settings_env = "\n".join(f"  {o.env:<29} same as {o.flag}" for o in OPTIONS.values())
    parser = argparse.ArgumentParser(
        prog="fanout-mcp",
        description="An MCP server that runs parallel subagents in the background. With no command it "
        "serves MCP over stdio, which is what MCP clients launch.",
        epilog=_ENVIRONMENT_HELP.format(
            settings=settings_env,
            command_keys=textwrap.fill(
                ", ".join(CommandSpec.model_fields), 98, initial_indent="    ", subsequent_indent="    "
            ),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fanout-mcp {package_version()}")
    _add_setting_flags(parser)
    # The same flags after the command (`fanout-mcp run plan.json --root .`); SUPPRESS keeps a flag given
    # before the command from being reset by the command's own default.
    after = _add_setting_flags(argparse.ArgumentParser(add_help=False), default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve MCP over stdio (the default)", parents=[after])
    run = commands.add_parser(
        "run",
        parents=[after],
        help="run a fan-out from a JSON plan file and print every result and the synthesis",
        description="Run PLAN (the same shape as spawn_parallel's arguments, plus an optional "
        '"synthesis": {"mode": "auto|llm|merge|none", "instructions": "..."}) through the same engine; '
        "progress goes to stderr, results to stdout.",
    )
    run.add_argument("plan", type=Path, metavar="PLAN.json")
    run.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    doctor = commands.add_parser(
        "doctor",
        parents=[after],
        help="say which backends can run here, and what to install or set for the others",
        description="Check every backend: the Anthropic API key, each agent CLI (found on PATH, its "
        "version, and whether a preset's CLI knows the flags the preset passes) and the default "
        "backend. Spends no tokens. Exit status 0 when a task that names no "
        "backend could run.",
    )
    doctor.add_argument(
        "--check",
        action="store_true",
        help="also try the API endpoint with the credentials: one free request (count_tokens), which "
        "reports the latency, a refused key (and the variable to fix) or a connection that failed (and "
        "the URL); without it doctor sends nothing",
    )
    return parser


def _add_setting_flags(parser: argparse.ArgumentParser, default: Any = None) -> argparse.ArgumentParser:
    for name, option in OPTIONS.items():
        action = "append" if name == "roots" else "store"
        parser.add_argument(
            option.flag, dest=name, action=action, metavar=option.metavar, help=option.help, default=default
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    seal()  # before anything can start a subagent: none may read this process's key or memory
    args = build_parser().parse_args(argv)
    overrides = {name: getattr(args, name, None) for name in OPTIONS}
    try:
        settings = load_settings(overrides)
    except SettingsError as exc:
        print(f"fanout-mcp: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        return anyio.run(_run, settings, args.plan, args.json)
    if args.command == "doctor":
        return anyio.run(_doctor, settings, args.check)
    server = create_server(settings)
    # A client may stop its server with a signal instead of closing stdin (the MCP spec's stdio shutdown
    # sends SIGTERM): the same shutdown, and the same status. serve_stdio reads stdin on the event loop,
    # so cancelling it never waits for the client to write.
    with contextlib.suppress(Stopped):
        anyio.run(until_signalled, lambda: serve_stdio(server))
    return 0


async def _run(settings: Settings, plan_path: Path, as_json: bool) -> int:
    _configure_logging(settings)
    try:
        plan = load_plan(plan_path)
        outcome = await until_signalled(lambda: _run_plan(settings, plan))
    except FanoutError as exc:
        print(f"fanout-mcp: {exc}", file=sys.stderr)
        return 2
    except Stopped as stop:
        print(f"fanout-mcp: {stop}: every task was cancelled", file=sys.stderr)
        return stop.exit_status
    print(_as_json(outcome) if as_json else _as_markdown(outcome))
    return 0 if all(t.state == "completed" for t in outcome.tasks) else 1


async def _run_plan(settings: Settings, plan: Plan) -> PlanOutcome:
    async with open_runtime(settings) as runtime:
        return await run_plan(runtime, plan, on_finish=_progress(len(plan.tasks)))


async def _doctor(settings: Settings, try_endpoint: bool) -> int:
    checkup = await check(settings, try_endpoint=try_endpoint)
    width = max(len(c.name) for c in checkup.backends)
    print(f"fanout-mcp {package_version()}: backends")
    for item in checkup.backends:
        state = "failed " if item.failed else "ok     " if item.usable else "missing"
        print(f"  {item.name:<{width}}  {state}  {item.detail}")
    if checkup.default_resolves_to is not None:
        print(
            f"tasks that name no backend run on: {checkup.default_resolves_to} (--backend {checkup.default})"
        )
    else:
        print(
            f"tasks that name no backend cannot run (--backend {checkup.default}): {checkup.default_problem}"
        )
    roots = ", ".join(str(r) for r in settings.roots) or "none (no file can be read: give --root DIR)"
    print(f"roots: {roots}")
    return 0 if checkup.default_resolves_to is not None else 1


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def _progress(total: int) -> Any:
    finished = 0

    async def on_finish(snap: TaskSnapshot) -> None:
        nonlocal finished
        finished += 1
        how = snap.state.value if snap.error is None else f"{snap.state.value} ({snap.error.kind.value})"
        elapsed = f" in {snap.elapsed_s:.1f} s" if snap.elapsed_s is not None else ""
        print(f"[{finished}/{total}] {snap.label}: {how}{elapsed}", file=sys.stderr, flush=True)

    return on_finish


def _as_markdown(outcome: PlanOutcome) -> str:
    lines = [f"# Fan-out {outcome.receipt.group_id}"]
    lines += [f"> warning: {w}" for w in outcome.receipt.warnings]
    for snap in outcome.tasks:
        lines.append(
            f"\n## {snap.label} [{snap.task_id}] ({snap.state.value}; {describe_usage(snap.usage)})\n"
        )
        if snap.error is not None:
            lines.append(f"**{snap.error.kind.value}**: {snap.error.message}\n")
        if snap.output:
            lines.append(snap.output.strip() + "\n")
    if outcome.synthesis is not None:
        lines.append(f"\n# Synthesis ({outcome.synthesis.mode})\n")
        lines.append(outcome.synthesis.markdown.strip())
        lines += [f"\n> note: {n}" for n in outcome.synthesis.notes]
    return "\n".join(lines)


def _as_json(outcome: PlanOutcome) -> str:
    data: dict[str, Any] = {
        "group_id": outcome.receipt.group_id,
        "warnings": outcome.receipt.warnings,
        "tasks": [snap.model_dump(mode="json") for snap in outcome.tasks],
        "synthesis": outcome.synthesis.model_dump(mode="json") if outcome.synthesis else None,
    }
    return json.dumps(data, indent=2)
