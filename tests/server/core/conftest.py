"""The engine-level tests here that take ``open_engine`` run on both executors (``tests/server/engines.py``)."""

from __future__ import annotations

from tests.server.engines import open_engine as open_engine
