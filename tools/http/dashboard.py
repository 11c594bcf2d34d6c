"""The dashboard on ``serve``'s listener: the same callers as ``/mcp`` (its bearer tokens' principals
and its operators) and the same ``Host`` headers; without authentication (loopback), the per-start
token of the link logged on stderr."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.auth.provider import TokenVerifier
from starlette.types import ASGIApp

from ...server import Settings
from ..callers import principal_of
from ..dashboard.app import Dashboard
from ..dashboard.security import Gate, VerifyToken
from ..dashboard.serving import attached
from .access import Access
from .serve import http_app


def served_app(
    settings: Settings, access: Access, mcp_url: str, after_import: Callable[[], None]
) -> tuple[ASGIApp, str]:
    """``serve``'s app, MCP at ``mcp_url`` and the dashboard beside it, and what to say of the dashboard."""
    from ..app import create_server

    dashboard = http_dashboard(settings, access, mcp_url)
    hooks = (attached(dashboard), dashboard.group_link)
    server = create_server(
        settings, after_import=after_import, verifier=access.verifier, auth=access.auth, dashboard=hooks
    )
    return http_app(server, access, dashboard.app()), dashboard_line(dashboard)


def http_dashboard(settings: Settings, access: Access, mcp_url: str) -> Dashboard:
    """The dashboard served beside the MCP endpoint at ``mcp_url``."""
    verify = None if access.verifier is None else _principal_of_token(access.verifier)
    gate = Gate(verify=verify, operators=settings.operators, hosts=access.security.allowed_hosts or [])
    dashboard = Dashboard(gate)
    dashboard.base_url = mcp_url.removesuffix("/mcp")
    return dashboard


def dashboard_line(dashboard: Dashboard) -> str:
    """What ``serve`` says of its dashboard on stderr."""
    link = dashboard.link()
    if dashboard.gate.signs_in_with_bearer:
        return f"{link} (sign in once with ?token=<your bearer token>)"
    return f"{link}"


def _principal_of_token(verifier: TokenVerifier) -> VerifyToken:
    async def verify(token: str) -> str | None:
        found = await verifier.verify_token(token)
        return None if found is None else principal_of(found)

    return verify
