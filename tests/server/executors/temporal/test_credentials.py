"""How the server connects to Temporal: plaintext to a dev server by default, TLS on request or with an
API key, the cluster's CA and a client certificate from files, and the key never shown."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from temporalio.service import TLSConfig

from server import Settings, SettingsError, load_settings
from server.core.errors import BackendUnavailable
from server.executors.temporal.connection import connect
from server.executors.temporal.credentials import Credentials, credentials
from tests.temporal_dev import DevServer

pytestmark = pytest.mark.anyio


def test_a_dev_server_is_spoken_to_in_plaintext_with_no_key() -> None:
    assert credentials(Settings()) == Credentials(tls=False, api_key=None)


def test_an_api_key_is_read_from_its_file_and_implies_tls(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("  sk-temporal-123\n")
    given = credentials(Settings(temporal_api_key_file=tmp_path / "key"))
    assert given == Credentials(tls=True, api_key="sk-temporal-123")


def test_the_clusters_ca_and_a_client_certificate_come_from_their_files(tmp_path: Path) -> None:
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_bytes(f"-----{name}-----\n".encode())
    settings = Settings(
        temporal_tls_ca=tmp_path / "ca.pem",
        temporal_tls_cert=tmp_path / "cert.pem",
        temporal_tls_key=tmp_path / "key.pem",
    )
    tls = credentials(settings).tls
    assert isinstance(tls, TLSConfig)
    assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key) == (
        b"-----ca-----\n",
        b"-----cert-----\n",
        b"-----key-----\n",
    )


def test_a_client_certificate_without_its_key_is_refused_naming_both_flags(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("c")
    with pytest.raises(SettingsError, match="--temporal-tls-cert and --temporal-tls-key go together"):
        load_settings({"temporal_tls_cert": str(tmp_path / "cert.pem")}, environ={})


def test_a_missing_file_is_refused_when_the_settings_are_read(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not a readable file"):
        load_settings({"temporal_api_key_file": str(tmp_path / "absent")}, environ={})


def test_an_empty_key_file_is_named_and_nothing_is_sent(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("\n")
    with pytest.raises(BackendUnavailable, match="holds no API key"):
        credentials(Settings(temporal_api_key_file=tmp_path / "key"))


async def test_tls_is_really_spoken_so_a_plaintext_dev_server_refuses_it_and_the_key_is_never_shown(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    plain = Settings(temporal_address=temporal_server.address)
    with anyio.fail_after(60):
        client = await connect(plain)  # the same server in plaintext: reachable
    assert client.namespace == "default"
    (tmp_path / "key").write_text("sk-temporal-secret-123\n")
    keyed = Settings(temporal_address=temporal_server.address, temporal_api_key_file=tmp_path / "key")
    with anyio.fail_after(60), pytest.raises(BackendUnavailable) as refused:
        await connect(keyed)
    assert "--temporal-tls" in str(refused.value)
    assert "sk-temporal-secret-123" not in str(refused.value)
