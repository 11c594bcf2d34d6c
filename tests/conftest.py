"""Fixtures shared by every test: the anyio backend, the fake Messages API, and settings factories."""

from __future__ import annotations

# First, and for its effect: the code is imported by its source-tree names (tests/source_names.py).
from tests import source_names as source_names

# isort: split

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import Settings
from tests.fake_api import FakeApi, serve_in_thread
from tests.temporal_dev import DevServer, run_dev_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the mcp and anthropic stacks are asyncio-first


@pytest.fixture(autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own per-user state directory: the default task store is a fresh file in it, never
    the user's."""
    home = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def fake_api_server() -> Iterator[FakeApi]:
    """One fake Messages API on 127.0.0.1 for the whole session."""
    api = serve_in_thread()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One Temporal dev server on 127.0.0.1 for the whole session (tests keep apart by task queue)."""
    yield from run_dev_server(tmp_path_factory.mktemp("temporal"))


# Variables through which the SDK could find credentials other than the test key.
_CREDENTIAL_VARIABLES = (
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_FEDERATION_RULE_ID",
    "ANTHROPIC_ORGANIZATION_ID",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
    "ANTHROPIC_CUSTOM_HEADERS",
)


@pytest.fixture
def fake_api(
    fake_api_server: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeApi]:
    """The fake, reset, with the SDK's environment pointed at it and no other credentials in reach
    (HOME is an empty directory, so no profile on disk is found either)."""
    fake_api_server.reset()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api_server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    for variable in _CREDENTIAL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    yield fake_api_server
    fake_api_server.release()  # nothing stays parked at the gate after a test


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """``make_settings(**overrides)``: settings rooted in the test's temporary directory."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"roots": (tmp_path,)}
        values.update(overrides)
        return Settings(**values)

    return make
