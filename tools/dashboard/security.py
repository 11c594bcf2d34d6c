"""Who may open the dashboard, and what its pages may do.

Signing in: the first visit carries ``?token=``: on a server without authentication (stdio with
``--dashboard``, ``serve`` on loopback without tokens) the random token made at start and logged on
stderr; on ``serve`` with authentication a bearer token its verifier accepts (the same check as
``/mcp``), whose principal the session then acts as. The answer is a redirect to the same page without
the token, setting an HttpOnly, SameSite=Strict cookie that names a session kept here, so the token
neither stays in the address bar nor is sent again. Without a session every page and event stream is
answered 401; a token refused, 403.

Every state-changing request is a POST carrying the session's CSRF token (an HMAC of the session id) in
``X-CSRF-Token``; a POST whose ``Origin`` is another site's, or without the token, is answered 403.
Every answer carries a strict Content-Security-Policy (this origin's scripts and styles only, no inline
script, nothing from any other host) and is not cached. The ``Host`` header is checked as ``/mcp``'s is
(DNS rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Final
from urllib.parse import urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...server import Caller

#: A bearer token's principal, or None when the token is refused (``serve``'s verifier, wrapped).
VerifyToken = Callable[[str], Awaitable[str | None]]

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
_SESSION_S: Final = 12 * 3600.0
_MAX_SESSIONS: Final = 1024  #: the oldest are forgotten first
CSRF_HEADER: Final = "x-csrf-token"


class Gate:
    """Sessions, CSRF tokens and the hosts accepted, for one dashboard (see the module)."""

    def __init__(
        self, *, verify: VerifyToken | None, operators: Collection[str], hosts: Sequence[str]
    ) -> None:
        self.start_token = secrets.token_urlsafe(24)  #: the link's token when there is no verifier
        self._secret = secrets.token_bytes(32)
        self._verify = verify
        self._operators = frozenset(operators)
        self.hosts = tuple(hosts)  #: ``Host`` headers accepted: ``name:port`` or ``name:*``
        self._sessions: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @property
    def signs_in_with_bearer(self) -> bool:
        return self._verify is not None

    def link(self, base: str) -> str:
        """The URL to open first: ``base`` with the start token (without a verifier), else ``base``."""
        return base if self._verify is not None else f"{base}?{urlencode({'token': self.start_token})}"

    async def sign_in(self, token: str) -> str | None:
        """A new session for whoever ``token`` stands for; None when it is refused."""
        if self._verify is not None:
            principal = await self._verify(token)
        elif secrets.compare_digest(token.encode(), self.start_token.encode()):
            principal = Caller.local().principal
        else:
            principal = None
        if principal is None:
            return None
        session = secrets.token_urlsafe(32)
        self._sessions[session] = (principal, time.monotonic() + _SESSION_S)
        while len(self._sessions) > _MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def caller(self, session: str | None) -> Caller | None:
        found = self._sessions.get(session) if session else None
        if found is None or found[1] < time.monotonic():
            return None
        return Caller(found[0], operator=found[0] in self._operators)

    def csrf(self, session: str) -> str:
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    def host_allowed(self, host: str) -> bool:
        return any(
            host == pattern or (pattern.endswith(":*") and host.startswith(pattern[:-1]))
            for pattern in self.hosts
        )


class Guard:
    """The ASGI middleware that applies the ``Gate`` to every request, and the headers to every answer.

    A request let in carries ``request.state.caller`` and ``request.state.csrf``.
    """

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self._app = app
        self._gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
            await send(message)

        refusal = await self._check(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self._app(scope, receive, send_with_headers)

    async def _check(self, request: Request) -> Response | None:
        """None to let ``request`` in (its state filled), else the answer it gets instead."""
        gate = self._gate
        if not gate.host_allowed(request.headers.get("host", "")):
            return PlainTextResponse("this host is not served here", status_code=421)
        if request.url.path.startswith("/static/"):
            return None  # the package's own assets: no data in them
        cookie = f"fanout_dashboard_{request.url.port or 0}"
        if (token := request.query_params.get("token")) is not None:
            return await self._sign_in(request, token, cookie)
        session = request.cookies.get(cookie)
        caller = gate.caller(session)
        if caller is None or session is None:
            return PlainTextResponse(
                "not signed in: open the dashboard link the server logged on stderr "
                "(on an authenticated server: add ?token=<your bearer token>)",
                status_code=401,
            )
        csrf = gate.csrf(session)
        if request.method not in ("GET", "HEAD") and not _same_site(request, csrf):
            return PlainTextResponse("refused: a change needs this page's CSRF token", status_code=403)
        request.state.caller = caller
        request.state.csrf = csrf
        return None

    async def _sign_in(self, request: Request, token: str, cookie: str) -> Response:
        session = await self._gate.sign_in(token)
        if session is None:
            return PlainTextResponse("this token is not accepted", status_code=403)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(cookie, session, httponly=True, samesite="strict", path="/")
        return response


def _same_site(request: Request, csrf: str) -> bool:
    """A change asked by this dashboard's own page: its CSRF token, and no other site's Origin."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return False
    return hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), csrf)
