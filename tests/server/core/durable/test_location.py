"""Where the store is, and the check made before a stdio server's greeter answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.config.settings import load_settings
from server.core.durable import StoreUnavailable, check_store, store_path


def test_checking_the_store_imports_neither_the_store_nor_the_task_records() -> None:
    # The check runs before the greeter answers the handshake: what it imports, the client waits for.
    probe = (
        "import sys; import fanout_mcp.server.core.durable; "
        "print(sorted(m for m in sys.modules if m.startswith('fanout_mcp.server.core')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "durable.store" not in loaded
    assert "core.records" not in loaded


def test_memory_names_no_file_and_a_path_names_that_file(tmp_path: Path) -> None:
    assert store_path(load_settings({"store": "memory"})) is None
    assert store_path(load_settings({"store": str(tmp_path / "t.db")})) == tmp_path / "t.db"


def test_a_store_in_a_missing_directory_is_refused_by_the_check(tmp_path: Path) -> None:
    settings = load_settings({"store": str(tmp_path / "absent" / "t.db")})
    with pytest.raises(StoreUnavailable, match="absent"):
        check_store(settings)
