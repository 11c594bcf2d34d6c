"""Who may reach ``fanout-mcp serve``, decided before it listens: authentication (a token file or an
OAuth issuer), and the ``Host`` and ``Origin`` headers accepted (DNS-rebinding protection, always on).

Loopback without authentication is allowed: whoever can reach it is on this machine and could run the
server as its user anyway, and the caller is then that user. Any other address without authentication
is refused before anything is bound, so nothing is served on a network that anyone on it could use to
spend the server's keys. An unspecified address (``0.0.0.0``, ``::``) also needs the names clients use
(``--allowed-hosts`` or ``--public-url``): the ``Host`` header cannot be derived from it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl

from ...server import Settings
from .introspection import Introspection
from .tokens import TokenFile, TokenFileError

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class AccessError(ValueError):
    """``serve`` cannot start as configured; the message says what to configure."""


@dataclass(frozen=True, slots=True)
class Access:
    """How ``serve`` checks its callers."""

    verifier: TokenVerifier | None
    auth: AuthSettings | None
    mode: str  #: said at start and by doctor
    security: TransportSecuritySettings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def public_url(settings: Settings, port: int) -> str:
    """Where clients reach the MCP endpoint."""
    if settings.public_url is not None:
        return settings.public_url
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{port}/mcp"


def security(settings: Settings, port: int) -> TransportSecuritySettings:
    """The ``Host`` and ``Origin`` headers accepted: as configured, else derived from the bind address
    (and the public URL's host)."""
    hosts = list(settings.allowed_hosts)
    if not hosts:
        bound = f"[{settings.host}]" if ":" in settings.host else settings.host
        names: list[str] = list(_LOOPBACK_NAMES) if is_loopback(settings.host) else []
        if not names and not _unspecified(settings.host):
            names = [bound]
        if settings.public_url is not None:
            names.append(urlsplit(settings.public_url).netloc)
        # A Host header carries the port unless it is the scheme's default.
        hosts = [pattern for name in dict.fromkeys(names) for pattern in (name, f"{name}:*")]
    origins = list(settings.allowed_origins) or [
        f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")
    ]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def open_access(settings: Settings, port: int) -> Access:
    """How ``serve`` on ``port`` checks callers, with its token file read (or its issuer's secret).

    Raises:
        AccessError: a conflicting or missing setting, or an unusable token file (the message says what
            to do; a token file's bad lines are named by number).
    """
    tokens, issuer, endpoint = settings.auth_tokens, settings.oauth_issuer, settings.oauth_introspection
    if tokens is not None and issuer is not None:
        raise AccessError("give --auth-tokens or --oauth-issuer, not both: a server checks tokens one way")
    if (issuer is None) != (endpoint is None):
        raise AccessError("--oauth-issuer and --oauth-introspection go together: give both")
    if tokens is None and issuer is None and not is_loopback(settings.host):
        raise AccessError(
            f"refusing to listen on {settings.host} without authentication: anyone who can reach it could "
            "spend this server's keys. Give --auth-tokens FILE (`fanout-mcp token add NAME --file FILE` "
            "makes a token), or --oauth-issuer URL with --oauth-introspection URL; or listen on 127.0.0.1."
        )
    if _unspecified(settings.host) and not (settings.allowed_hosts or settings.public_url):
        raise AccessError(
            f"listening on {settings.host} accepts any address: name the host clients use with "
            "--allowed-hosts (e.g. fanout.example.com:*) or --public-url, so that a forged Host is refused."
        )
    checks = security(settings, port)
    if tokens is not None:
        return _token_access(tokens, public_url(settings, port), checks)
    if issuer is not None and endpoint is not None:
        return _oauth_access(settings, issuer, endpoint, public_url(settings, port), checks)
    return Access(None, None, "none (loopback: callers act as this server's user)", checks)


def _token_access(path: Path, url: str, checks: TransportSecuritySettings) -> Access:
    try:
        verifier = TokenFile(path)
    except TokenFileError as exc:
        raise AccessError(str(exc)) from None
    # The SDK wants an issuer for its bearer middleware; a token file has none, so no
    # protected-resource metadata is served (it would send clients to an authorization server
    # that does not exist): a client gives the token as a header instead.
    auth = AuthSettings(issuer_url=AnyHttpUrl(_origin(url)), resource_server_url=None)
    mode = f"bearer tokens from {path} ({len(verifier.principals)} principals)"
    return Access(verifier, auth, mode, checks)


def _oauth_access(
    settings: Settings, issuer: str, endpoint: str, url: str, checks: TransportSecuritySettings
) -> Access:
    try:
        verifier = Introspection(
            endpoint, issuer, url, settings.oauth_client_id, settings.oauth_client_secret_file
        )
    except OSError as exc:
        raise AccessError(
            f"--oauth-client-secret-file {settings.oauth_client_secret_file}: cannot be read ({exc.strerror})"
        ) from None
    # The verifier checks the audience itself (an answer may name none), hence no resource validation.
    auth = AuthSettings(
        issuer_url=AnyHttpUrl(issuer), resource_server_url=AnyHttpUrl(url), validate_token_resource=False
    )
    return Access(verifier, auth, f"OAuth: tokens of {issuer}, checked at {endpoint}", checks)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
