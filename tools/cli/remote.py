"""The commands for remote use: ``serve`` (MCP over streamable HTTP), ``token add``, and what ``doctor``
says of the HTTP settings."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ...server import Settings
from .loop import loop_options

#: Where ``token add`` writes when neither ``--file`` nor ``--auth-tokens`` names a file.
DEFAULT_TOKEN_FILE = Path("~/.config/fanout-mcp/tokens")


def serve_command(settings: Settings) -> int:
    """Serve over HTTP until a stop signal; 2 when it cannot start (the reason on stderr)."""
    import anyio

    from ..http.access import AccessError, open_access, public_url
    from ..http.dashboard import served_app
    from ..http.serve import bind, serve_http
    from .heap import freeze_startup_heap
    from .main import configure_logging

    configure_logging(settings)
    try:
        access = open_access(settings, settings.port)
        sock = bind(settings.host, settings.port)
    except AccessError as exc:
        print(f"fanout-mcp serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"fanout-mcp serve: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    port = sock.getsockname()[1]
    if settings.port == 0:  # the URL and allowed hosts name the port it got
        access = open_access(settings.model_copy(update={"port": port}), port)
    app, dashboard = served_app(settings, access, public_url(settings, port), freeze_startup_heap)
    print(f"fanout-mcp: serving MCP at {public_url(settings, port)} (auth: {access.mode})", file=sys.stderr)
    print(f"dashboard: {dashboard}", file=sys.stderr, flush=True)
    with sock, contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve_http, app, sock, settings, backend_options=loop_options())
    return 0


def token_command(principal: str, file: Path | None, settings: Settings) -> int:
    """Print a new token for ``principal`` once and append its digest to the token file."""
    from ..http.tokens import add_token

    path = (file or settings.auth_tokens or DEFAULT_TOKEN_FILE).expanduser()
    try:
        token = add_token(path, principal)
    except ValueError as exc:
        print(f"fanout-mcp token add: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fanout-mcp token add: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 2
    print(token)
    print(
        f"added a token for {principal!r} to {path}; it is shown only now (the file keeps its digest). "
        f"Serve with --auth-tokens {path}; clients send 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return 0


def doctor_lines(settings: Settings) -> list[str]:
    """What ``doctor`` says of ``serve``: where it would listen, who may call, the hosts accepted."""
    from ..http.access import AccessError, open_access, public_url

    unfinished = settings.max_unfinished_per_principal or settings.max_unfinished
    per_minute = settings.max_spawns_per_minute or "any number of"
    lines = [
        f"principals: operators {', '.join(settings.operators) or 'none'}; each may have {unfinished} "
        f"unfinished tasks and make {per_minute} spawns a minute",
        f"serve (HTTP): {public_url(settings, settings.port)} (bind {settings.host}:{settings.port})",
    ]
    try:
        access = open_access(settings, settings.port)
    except AccessError as exc:
        return [*lines, f"serve cannot start: {exc}"]
    return [
        *lines,
        f"serve auth: {access.mode}",
        f"serve allowed hosts: {', '.join(access.security.allowed_hosts)}",
    ]
