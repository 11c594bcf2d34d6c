"""Each principal's limits: unfinished tasks and spawns a minute. Passing one refuses that principal's
spawn with the limit's name and what to do; other principals go on."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from server import Caller, LimitReached, Settings, SpawnRequest, TaskRequest
from tests.server.engines import OpenEngine
from tests.server.fakes import ScriptedBackend, gated

MakeSettings = Callable[..., Settings]
ALICE, BOB = Caller("alice"), Caller("bob")


def spawn_of(n: int) -> SpawnRequest:
    return SpawnRequest(tasks=[TaskRequest(task=f"part {i}") for i in range(n)])


async def test_a_principal_past_its_unfinished_limit_is_refused_and_others_go_on(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    settings = make_settings(max_unfinished_per_principal=3)
    async with open_engine(settings, ScriptedBackend(gated(anyio.Event()))) as registry:
        await registry.spawn(spawn_of(2), caller=ALICE)

        with pytest.raises(LimitReached) as refused:
            await registry.spawn(spawn_of(2), caller=ALICE)
        await registry.spawn(spawn_of(3), caller=BOB)

        message = str(refused.value)
        assert "'alice' has 2 tasks queued or running" in message
        assert "--max-unfinished-per-principal" in message and "collect or cancel" in message
        assert (await registry.list(caller=ALICE)).total == 2


async def test_a_principal_past_its_spawns_a_minute_is_refused_and_others_go_on(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async with open_engine(make_settings(max_spawns_per_minute=2), ScriptedBackend()) as registry:
        for _ in range(2):
            await registry.spawn(spawn_of(1), caller=ALICE)

        with pytest.raises(LimitReached) as refused:
            await registry.spawn(spawn_of(1), caller=ALICE)
        await registry.spawn(spawn_of(1), caller=BOB)

        message = str(refused.value)
        assert "'alice' has made 2 spawns in the last minute" in message
        assert "--max-spawns-per-minute" in message and "more tasks in one spawn_parallel call" in message


async def test_no_limit_on_spawns_a_minute_at_zero(
    make_settings: MakeSettings, open_engine: OpenEngine
) -> None:
    async with open_engine(make_settings(max_spawns_per_minute=0), ScriptedBackend()) as registry:
        for _ in range(5):
            await registry.spawn(spawn_of(1), caller=ALICE)
        assert (await registry.list(caller=ALICE)).total == 5
