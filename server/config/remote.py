"""Settings for a server shared by several principals: where ``fanout-mcp serve`` listens (HTTP), how
it knows who calls (a token file, or an OAuth issuer), who may see everything (operators), and how much
one principal may ask for at once. ``Settings`` (``settings.py``) holds them with the engine's; the
stdio server uses only the operators and the limits (its one principal is the local user).

A list (operators, allowed hosts and origins) is given as one comma-separated value on the command line
and in the environment, or as a list in the configuration file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .option import Option

DEFAULT_PORT: Final = 8765


class RemoteSettings(BaseModel):
    """The shared-server part of ``Settings``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_unfinished_per_principal: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    max_spawns_per_minute: Annotated[int, Field(ge=0, le=1_000_000)] = 600
    operators: tuple[str, ...] = ()
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    auth_tokens: Path | None = None
    oauth_issuer: str | None = None
    oauth_introspection: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret_file: Path | None = None
    public_url: str | None = None

    @field_validator("operators", "allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("oauth_issuer", "oauth_introspection", "public_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url


REMOTE_OPTIONS: Final[Mapping[str, Option]] = {
    "max_unfinished_per_principal": Option(
        "--max-unfinished-per-principal",
        "FANOUT_MAX_UNFINISHED_PER_PRINCIPAL",
        "most queued+running tasks one principal (a token's name; over stdio the local user) may have; "
        "its further spawns are refused until some finish (default: the server's --max-unfinished)",
    ),
    "max_spawns_per_minute": Option(
        "--max-spawns-per-minute",
        "FANOUT_MAX_SPAWNS_PER_MINUTE",
        "most spawn_parallel calls one principal may make in a minute; 0: no limit (default: 600)",
    ),
    "operators": Option(
        "--operators",
        "FANOUT_OPERATORS",
        "principals (comma-separated; the local user as local:NAME) that list and cancel every "
        "principal's tasks (default: none)",
        metavar="NAMES",
    ),
    "host": Option(
        "--host",
        "FANOUT_HOST",
        "serve: the address to listen on (default: 127.0.0.1); any but loopback needs --auth-tokens "
        "or --oauth-issuer",
        metavar="ADDRESS",
    ),
    "port": Option(
        "--port", "FANOUT_PORT", f"serve: the TCP port (default: {DEFAULT_PORT}; 0: any free one)"
    ),
    "allowed_hosts": Option(
        "--allowed-hosts",
        "FANOUT_ALLOWED_HOSTS",
        "serve: Host headers accepted, comma-separated, host:port or host:* (default: the bind address "
        "and, on loopback, localhost, with any port); others are answered 421",
        metavar="HOSTS",
    ),
    "allowed_origins": Option(
        "--allowed-origins",
        "FANOUT_ALLOWED_ORIGINS",
        "serve: Origin headers accepted (browsers send them), comma-separated (default: http:// and "
        "https:// of the allowed hosts); others are answered 403",
        metavar="ORIGINS",
    ),
    "auth_tokens": Option(
        "--auth-tokens",
        "FANOUT_AUTH_TOKENS",
        "serve: file of bearer tokens, one '<principal> sha256:<hex>' a line (`fanout-mcp token add` "
        "writes them); read again when it changes",
        metavar="FILE",
    ),
    "oauth_issuer": Option(
        "--oauth-issuer",
        "FANOUT_OAUTH_ISSUER",
        "serve: the OAuth 2.1 authorization server that issues tokens for this server (its URL, as in "
        "the protected-resource metadata served)",
        metavar="URL",
    ),
    "oauth_introspection": Option(
        "--oauth-introspection",
        "FANOUT_OAUTH_INTROSPECTION",
        "serve: the issuer's RFC 7662 token introspection endpoint, which every token is checked against",
        metavar="URL",
    ),
    "oauth_client_id": Option(
        "--oauth-client-id",
        "FANOUT_OAUTH_CLIENT_ID",
        "serve: this server's client id at the introspection endpoint (HTTP Basic, with the secret below)",
        metavar="ID",
    ),
    "oauth_client_secret_file": Option(
        "--oauth-client-secret-file",
        "FANOUT_OAUTH_CLIENT_SECRET_FILE",
        "serve: file holding the client secret for the introspection endpoint (a file, so that it is "
        "in no process listing)",
        metavar="FILE",
    ),
    "public_url": Option(
        "--public-url",
        "FANOUT_PUBLIC_URL",
        "serve: the URL clients reach /mcp at, behind a proxy (default: http://HOST:PORT/mcp); with "
        "OAuth, the resource the tokens must be for",
        metavar="URL",
    ),
}
