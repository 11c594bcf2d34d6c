"""How a front end or a worker proves itself to the Temporal cluster, and how it checks the cluster: TLS
(the system's roots, or the CA the settings name; a client certificate for mutual TLS) and an API key
read from a file. The key goes to the SDK only (which sends it as a bearer token): it is never logged and
never in an error, which names the file instead."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from temporalio.service import TLSConfig

from ...config.settings import Settings
from ...core.errors import BackendUnavailable


@dataclass(frozen=True, slots=True)
class Credentials:
    tls: bool | TLSConfig  #: False: plaintext (a dev server); True: the system's roots
    api_key: str | None


def credentials(settings: Settings) -> Credentials:
    """What the settings say to connect with (reads their files: call it off the event loop).

    Raises:
        BackendUnavailable: a file cannot be read, or the API key file holds no key.
    """
    api_key = _api_key(settings.temporal_api_key_file)
    ca, cert, key = settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key
    if ca is not None or cert is not None:
        tls: bool | TLSConfig = TLSConfig(
            server_root_ca_cert=_read(ca), client_cert=_read(cert), client_private_key=_read(key)
        )
    else:
        # An API key is never sent in the clear: it implies TLS, as the SDK's own default does.
        tls = settings.temporal_tls or api_key is not None
    return Credentials(tls, api_key)


def _api_key(path: Path | None) -> str | None:
    if path is None:
        return None
    key = (_read(path) or b"").decode("utf-8", "replace").strip()
    if not key:
        raise BackendUnavailable(
            f"{path} holds no API key: put the key alone in it (--temporal-api-key-file)"
        )
    return key


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BackendUnavailable(f"cannot read {path} ({exc.strerror})") from None
