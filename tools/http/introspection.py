"""An OAuth 2.1 resource server's token check: each bearer token is asked about at the issuer's RFC 7662
introspection endpoint (``--oauth-introspection``), authenticated as this server's client when
``--oauth-client-id`` is given.

A token is accepted when the issuer says it is active, was issued by the configured issuer (when the
answer names one) and for this server (when it names an audience: ``--public-url``, the resource
the protected-resource metadata names). Its principal is its subject, else its client. An issuer that
cannot be reached refuses the token (logged, without it): a check that cannot be made is not a pass.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import httpx2
from mcp.server.auth.provider import AccessToken, TokenVerifier

logger = logging.getLogger(__name__)


class Introspection(TokenVerifier):
    """Checks bearer tokens at an issuer's introspection endpoint."""

    def __init__(
        self, endpoint: str, issuer: str, resource: str, client_id: str | None, secret_file: Path | None
    ) -> None:
        """Raises ``OSError`` if the secret file cannot be read."""
        self._endpoint = endpoint
        self._issuer = issuer.rstrip("/")
        self._resource = resource.rstrip("/")
        secret = secret_file.read_text(encoding="utf-8").strip() if secret_file is not None else ""
        self._auth = httpx2.BasicAuth(client_id, secret) if client_id is not None else None

    async def verify_token(self, token: str) -> AccessToken | None:
        answer = await self._ask(token)
        if answer is None or answer.get("active") is not True:
            return None
        issuer, audience = answer.get("iss"), answer.get("aud")
        if issuer is not None and str(issuer).rstrip("/") != self._issuer:
            logger.warning("refused a token of another issuer (%s)", issuer)
            return None
        if audience is not None and not self._for_us(audience):
            logger.warning("refused a token issued for another resource")
            return None
        subject, client = answer.get("sub"), answer.get("client_id")
        if not isinstance(subject, str) and not isinstance(client, str):
            return None
        scope = answer.get("scope")
        expires = answer.get("exp")
        return AccessToken(
            token="",  # kept by nobody: the issuer is asked again on the next request
            client_id=client if isinstance(client, str) else cast(str, subject),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=expires if isinstance(expires, int) else None,
            subject=subject if isinstance(subject, str) else None,
            claims={"iss": issuer} if issuer is not None else None,
        )

    def _for_us(self, audience: object) -> bool:
        audiences = cast(list[object], audience) if isinstance(audience, list) else [audience]
        return any(isinstance(a, str) and a.rstrip("/") == self._resource for a in audiences)

    async def _ask(self, token: str) -> dict[str, Any] | None:
        form = {"token": token, "token_type_hint": "access_token"}
        try:
            async with httpx2.AsyncClient(auth=self._auth, timeout=10.0) as client:
                response = await client.post(self._endpoint, data=form)
            response.raise_for_status()
            answer: Any = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            logger.warning("token introspection at %s failed: %s", self._endpoint, type(exc).__name__)
            return None
        return cast(dict[str, Any], answer) if isinstance(answer, dict) else None
