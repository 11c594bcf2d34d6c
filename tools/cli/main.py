"""The ``fanout-mcp`` command: serve MCP over stdio (the default) or over HTTP (``serve``), run a plan
file, add a bearer token, or check the set-up (``doctor``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...server.app.secrecy import seal

# Only what --version and --help need is imported here: the settings table and the command keys. The MCP
# SDK and the Anthropic SDK take seconds to import; each command imports what it needs when it runs.
from ...server.config.commands import CommandSpec
from ...server.config.settings import OPTIONS, Settings, SettingsError, load_settings
from ..identity import package_version
from ..stdio.greeter import Greeter
from .loop import loop_options

if TYPE_CHECKING:
    from ..dashboard.serving import Around

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


_DOCTOR_CONNECT_S = 10.0  # how long doctor waits for the Temporal cluster to answer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fanout-mcp",
        description="An MCP server that runs parallel subagents in the background. With no command it "
        "serves MCP over stdio, which is what MCP clients launch.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fanout-mcp {package_version()}")
    parser.add_argument(
        "--dashboard",
        action="store_true",
        help="stdio: serve the live dashboard on a free port of 127.0.0.1 (--dashboard-port to fix it)",
    )
    _add_setting_flags(parser)
    # The same flags after the command (`fanout-mcp run plan.json --root .`); SUPPRESS keeps a flag given
    # before the command from being reset by the command's own default.
    after = _add_setting_flags(argparse.ArgumentParser(add_help=False), default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "serve",
        parents=[after],
        help="serve MCP over streamable HTTP at /mcp (--host, --port; see the README's Remote use)",
        description="Serve MCP over streamable HTTP at http://HOST:PORT/mcp, with /healthz. Every other "
        "setting applies as on stdio. Any address but loopback needs --auth-tokens or --oauth-issuer.",
    )
    _add_token(commands.add_parser, after)
    _add_run(commands.add_parser, after)
    _add_doctor(commands.add_parser, after)
    commands.add_parser(
        "worker",
        parents=[after],
        help="run a Temporal worker of --task-queue (--executor temporal; see the README's Scale out)",
        description="Run the group workflows and subagent activities of --task-queue on the Temporal "
        "cluster at --temporal-address, with this machine's backends and settings, until stopped by a "
        "signal; the tasks it runs then are given to another worker.",
    )
    return parser


def _epilog() -> str:
    return _ENVIRONMENT_HELP.format(
        settings="\n".join(f"  {o.env:<29} same as {o.flag}" for o in OPTIONS.values()),
        command_keys=textwrap.fill(
            ", ".join(CommandSpec.model_fields), 98, initial_indent="    ", subsequent_indent="    "
        ),
    )


def _add_run(add_parser: Callable[..., argparse.ArgumentParser], after: argparse.ArgumentParser) -> None:
    run = add_parser(
        "run",
        parents=[after],
        help="run a fan-out from a JSON plan file and print every result and the synthesis",
        description="Run PLAN (the same shape as spawn_parallel's arguments, plus an optional "
        '"synthesis": {"mode": "auto|llm|merge|none", "instructions": "..."}) through the same engine; '
        "progress goes to stderr, results to stdout.",
    )
    run.add_argument("plan", type=Path, metavar="PLAN.json")
    run.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    run.add_argument(
        "--report", type=Path, metavar="FILE", help="also write the run report, one self-contained HTML file"
    )
    report = add_parser(
        "report",
        parents=[after],
        help="write the run report of a group the task store keeps (--store) to one HTML file",
        description="Write GROUP_ID's run report: its timeline, every task's tokens, cost and output, a "
        "merge of its answers (conflicts and missing tasks) and the settings, in one HTML file that "
        "needs no network.",
    )
    report.add_argument("group_id", metavar="GROUP_ID")
    report.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="where to write (default: GROUP_ID.html)"
    )


def _add_token(add_parser: Callable[..., argparse.ArgumentParser], after: argparse.ArgumentParser) -> None:
    token = add_parser("token", help="add a bearer token for serve")
    actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        parents=[after],
        help="print a new random token for NAME once, and append its digest to the token file",
        description="Print a new token for the principal NAME (shown only now) and append "
        "'NAME sha256:<digest>' to FILE (--file, else --auth-tokens, else ~/.config/fanout-mcp/tokens; "
        "created readable by its owner only).",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--file", type=Path, metavar="FILE", help="the token file to append to")


def _add_doctor(add_parser: Callable[..., argparse.ArgumentParser], after: argparse.ArgumentParser) -> None:
    doctor = add_parser(
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


def _add_setting_flags(parser: argparse.ArgumentParser, default: Any = None) -> argparse.ArgumentParser:
    for name, option in OPTIONS.items():
        if option.switch:
            parser.add_argument(
                option.flag, dest=name, action="store_const", const=True, help=option.help, default=default
            )
            continue
        action = "append" if name == "roots" else "store"
        parser.add_argument(
            option.flag, dest=name, action=action, metavar=option.metavar, help=option.help, default=default
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    seal()  # before anything can start a subagent: none may read this process's key or memory
    args = build_parser().parse_args(argv)
    settings = _settings_of(args)
    if settings is None:
        return 2
    if args.command not in ("doctor", "token", "worker") and (problem := _store_problem(settings)):
        print(f"fanout-mcp: {problem}", file=sys.stderr)
        return 2
    if args.command is None:
        return _serve(settings)
    return _command(args, settings)


def _settings_of(args: argparse.Namespace) -> Settings | None:
    """The settings the flags, environment and file make; None once a bad one is said on stderr."""
    overrides = {name: getattr(args, name, None) for name in OPTIONS}
    if args.dashboard and overrides["dashboard_port"] is None:
        overrides["dashboard_port"] = 0
    try:
        return load_settings(overrides)
    except SettingsError as exc:
        print(f"fanout-mcp: {exc}", file=sys.stderr)
        return None


def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in ("serve", "token"):
        from .remote import serve_command, token_command

        return (
            serve_command(settings)
            if args.command == "serve"
            else token_command(args.name, args.file, settings)
        )
    import anyio

    if args.command == "worker":
        configure_logging(settings)
        return _worker(settings)
    if args.command == "run":
        from .run import run_command

        configure_logging(settings)
        return anyio.run(
            run_command, settings, args.plan, args.json, args.report, backend_options=loop_options()
        )
    if args.command == "report":
        from .report import report_command

        configure_logging(settings)
        return anyio.run(report_command, settings, args.group_id, args.output, backend_options=loop_options())
    return anyio.run(_doctor, settings, args.check, backend_options=loop_options())


def _store_problem(settings: Settings) -> str | None:
    """What is wrong with the settings' task store, checked before serving (a few ms: SQLite only)."""
    from ...server.core.durable import StoreUnavailable, check_store

    try:
        check_store(settings)
    except StoreUnavailable as exc:
        return str(exc)
    return None


def _serve(settings: Settings) -> int:
    # The handshake is answered while the MCP SDK is still being imported (see greeter).
    greeter = Greeter(package_version()).start()
    import anyio

    from ..app import create_server
    from ..stdio.serve import serve_stdio
    from .heap import freeze_startup_heap
    from .signals import Stopped, until_signalled

    server = create_server(settings, after_import=freeze_startup_heap, dashboard=_dashboard(settings))
    greeted = greeter.hand_over()
    # A client may stop its server with a signal instead of closing stdin (the MCP spec's stdio shutdown
    # sends SIGTERM): the same shutdown, and the same status. serve_stdio reads stdin on the event loop,
    # so cancelling it never waits for the client to write.
    with contextlib.suppress(Stopped):
        anyio.run(until_signalled, lambda: serve_stdio(server, greeted), backend_options=loop_options())
    return 0


def _dashboard(settings: Settings) -> tuple[Around, Callable[[str], str | None]] | None:
    """The stdio server's dashboard, on the loopback port the settings name; None without one."""
    if settings.dashboard_port is None:
        return None
    from ..dashboard.app import Dashboard
    from ..dashboard.security import Gate
    from ..dashboard.serving import on_loopback

    dashboard = Dashboard(Gate(verify=None, operators=settings.operators, hosts=()))
    return on_loopback(dashboard, settings.dashboard_port), dashboard.group_link


def _worker(settings: Settings) -> int:
    import anyio

    from ...server.app.worker import run_worker
    from ...server.core.errors import BackendUnavailable
    from .signals import Stopped, until_signalled

    try:
        anyio.run(until_signalled, lambda: run_worker(settings), backend_options=loop_options())
    except Stopped:
        return 0
    except BackendUnavailable as exc:
        print(f"fanout-mcp: {exc}", file=sys.stderr)
        return 2
    return 0


async def _doctor(settings: Settings, try_endpoint: bool) -> int:
    from ...server.app.doctor import check  # the Anthropic SDK with it
    from ...server.core.durable import describe_store

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
    print(f"store: {describe_store(settings)}")
    from .remote import doctor_lines

    print("\n".join(doctor_lines(settings)))
    reachable = await _doctor_executor(settings)
    return 0 if checkup.default_resolves_to is not None and reachable else 1


async def _doctor_executor(settings: Settings) -> bool:
    """Say where tasks run; with --executor temporal, whether the cluster answers (False if not)."""
    if settings.executor == "embedded":
        print("executor: embedded (tasks run in the server process)")
        return True
    from ...server.app.placement import require_temporal
    from ...server.core.errors import BackendUnavailable

    try:
        require_temporal()
    except BackendUnavailable as exc:
        print(f"executor: temporal: {exc}")
        return False
    import anyio

    from ...server.executors.temporal.connection import describe_cluster

    reachable, said = False, f"{settings.temporal_address}: no answer within {_DOCTOR_CONNECT_S:g} s"
    with anyio.move_on_after(_DOCTOR_CONNECT_S):
        reachable, said = await describe_cluster(settings)
    print(f"executor: temporal at {said}")
    return reachable


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler])


class _Stderr:
    """``sys.stderr`` as it is at each write: while ``run`` shows its live table on a terminal, ``rich``
    puts its own there, which prints above the table."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
