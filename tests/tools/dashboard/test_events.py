"""The pages' event streams: the latest view only, read when the client is ready for it, never queued."""

from __future__ import annotations

import json
from contextlib import aclosing

import anyio
import pytest

from server import UnknownTask
from tools.dashboard.events import updates


async def test_a_client_that_reads_late_gets_the_latest_view_once_and_nothing_is_read_ahead_for_it() -> None:
    state = {"view": 0, "reads": 0}

    async def read() -> str:
        state["reads"] += 1
        return json.dumps(state["view"])

    closing = anyio.Event()
    async with aclosing(updates(read, closing)) as stream:
        with anyio.fail_after(10):
            assert await anext(stream) == "event: view\ndata: 0\n\n"
            for view in range(1, 101):  # a hundred changes while the client reads nothing
                state["view"] = view
            assert await anext(stream) == "event: view\ndata: 100\n\n"
            assert state["reads"] == 2  # one read per message sent: no backlog is built for a slow client
            closing.set()
            with pytest.raises(StopAsyncIteration):
                await anext(stream)


async def test_a_stream_whose_group_is_gone_says_so_and_ends() -> None:
    async def read() -> str:
        raise UnknownTask("no group with id 'g-1'")

    async with aclosing(updates(read, anyio.Event())) as stream:
        with anyio.fail_after(10):
            assert await anext(stream) == "event: gone\ndata: {}\n\n"
            with pytest.raises(StopAsyncIteration):
                await anext(stream)
