"""``fanout-mcp worker``: a Temporal worker of the settings' task queue, with the same backends and
settings a server has (its API key is this process's environment, never workflow input)."""

from __future__ import annotations

import anyio

from ..config.pricing import PriceTable
from ..config.settings import Settings
from .placement import require_temporal
from .runtime import make_files, open_backends


async def run_worker(settings: Settings) -> None:
    """Run a worker until cancelled; then it stops taking work and lets its running activities go.

    Raises:
        BackendUnavailable: Temporal cannot be reached, or ``temporalio`` is not installed.
        ValueError: the price file cannot be used.
    """
    require_temporal()
    from ..executors.temporal.connection import connect
    from ..executors.temporal.worker import running_worker

    prices = PriceTable.load(settings.prices_file)
    client = await connect(settings)
    async with (
        open_backends(settings, prices, make_files(settings)) as roster,
        running_worker(client, settings, roster, prices),
    ):
        await anyio.sleep_forever()
