"""Who makes a tool call: the principal the engine files its tasks under (``server/core/callers.py``).

Over HTTP with authentication it is the principal of the access token the SDK's bearer middleware
verified for this request (a token file's name; an OAuth token's subject, else its client id). Over
stdio, and over HTTP on loopback without authentication, it is the user the server runs as: whoever
can reach such a server can act as that user anyway. A principal named in ``--operators`` is an
operator.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cache
from typing import Any, cast

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context

from ..server import Caller


@cache
def _local() -> str:
    return Caller.local().principal


def principal_of(token: AccessToken) -> str:
    """The principal a verified token stands for: its subject (the user an issuer vouches for), else
    its client (a token file's principal)."""
    return token.subject or token.client_id


def caller_of(ctx: Context, operators: Collection[str]) -> Caller:
    """The caller of the tool call ``ctx`` belongs to."""
    token = _access_token(ctx)
    principal = _local() if token is None else principal_of(token)
    return Caller(principal, operator=principal in operators)


def _access_token(ctx: Context) -> AccessToken | None:
    token = get_access_token()  # set while the HTTP request that carried the call is served
    if token is not None:
        return token
    # A stateful session serves a call in its own task: the request travels with the message.
    scope: Any = getattr(ctx.request_context.request, "scope", None)
    user: object = cast(Mapping[str, object], scope).get("user") if isinstance(scope, Mapping) else None
    return user.access_token if isinstance(user, AuthenticatedUser) else None
