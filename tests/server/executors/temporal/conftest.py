"""Settings of front ends on the session's Temporal dev server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from server import Settings
from tests.temporal_dev import DevServer

MakeSettings = Callable[..., Settings]


@pytest.fixture
def on_temporal(make_settings: MakeSettings, temporal_server: DevServer) -> Callable[..., Settings]:
    """Settings of a front end on the dev server; every front end of one test shares its task queue."""
    queue = f"test-{uuid.uuid4().hex[:12]}"

    def make(**more: Any) -> Settings:
        values: dict[str, Any] = {"executor": "temporal", "temporal_address": temporal_server.address}
        return make_settings(task_queue=queue, store="memory", **values, **more)  # type: ignore[no-any-return]

    return make
