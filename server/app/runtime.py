"""Everything the server owns for its lifetime, opened and closed in one place: the composition root.

``open_runtime`` is what the MCP lifespan (``tools/app.py``) and the ``run`` command both enter: it makes
the one ``AsyncAnthropic`` client on the running event loop, the backends (the batch backend with the
task group its batches are driven in), the file reader, the registry and its task group, and the
synthesizer, and closes them in reverse order. It hands each what it needs; whoever needs the
settings, the backends or the file reader takes them from the ``Runtime``, never from the registry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anthropic
import anyio
import httpx2

from ..backends import Backend
from ..backends.anthropic_api import AnthropicBackend
from ..backends.batch import BatchBackend
from ..backends.cli import CommandBackend
from ..backends.endpoint import Endpoint
from ..backends.pools import http_client
from ..backends.roster import Roster
from ..backends.throttle import Throttle
from ..backends.workspace import Workspace
from ..changes.editing import state_dir
from ..changes.workshop import Workshop
from ..config.pricing import PriceTable
from ..config.settings import Settings
from ..core.registry import TaskRegistry, open_registry
from ..fanin.synthesis import Synthesizer
from ..intake.files import FileReader
from .placement import open_placement

# The SDK logs every request at INFO; with hundreds of subagents that drowns everything else.
for _noisy in ("httpx2", "httpcore2", "anthropic"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class Runtime:
    """What tools and commands work with."""

    settings: Settings
    backends: Roster  #: every backend of the server, and the rule that picks one
    files: FileReader  #: how tasks' files are found and read (the allowed roots)
    registry: TaskRegistry
    synthesizer: Synthesizer
    changes: Workshop  #: edit tasks' change sets


def make_client(settings: Settings) -> anthropic.AsyncAnthropic:
    """One client for the whole server, on the current event loop.

    Credentials and ``ANTHROPIC_BASE_URL`` come from the environment, as the SDK reads them. Retries are
    ours (see ``AnthropicBackend``), so the SDK's are off. Requests go through the SDK's aiohttp transport,
    its pool as large as the requests the server may send at once (``pools.py``): the pool never
    throttles; concurrency is bounded by the registry and the throttle.
    """
    return anthropic.AsyncAnthropic(
        max_retries=0,
        timeout=httpx2.Timeout(600.0, connect=10.0),
        http_client=http_client(settings.max_concurrency),
    )


def make_endpoint(settings: Settings, client: anthropic.AsyncAnthropic) -> Endpoint:
    """What the server learns about ``client``'s endpoint and key, for every backend that uses them."""
    return Endpoint(client, grace_s=settings.connect_grace_s)


def make_files(settings: Settings) -> FileReader:
    """How tasks' files are found and read, within the settings' roots."""
    return FileReader(settings.roots, max_file_bytes=settings.max_file_bytes)


def make_roster(
    settings: Settings,
    client: anthropic.AsyncAnthropic,
    batch: BatchBackend | None = None,
    files: FileReader | None = None,
) -> Roster:
    """Every backend the settings offer: the Anthropic API, Message Batches and each configured agent CLI.

    ``batch`` is the running batch backend; without one, an idle one stands in, which can say whether
    it could run here (``doctor``) but runs nothing. Both API backends share the batch backend's
    ``Endpoint``: they reach one endpoint with one key. ``files`` is the reader the workspace tools use.
    """
    workspace = Workspace(files or make_files(settings))
    batch = batch or BatchBackend(client, PriceTable.load(None), endpoint=make_endpoint(settings, client))
    api = AnthropicBackend(
        client,
        # It starts at the ceiling, which by default is what an account of the Start tier allows (1,000
        # requests a minute); the first answers' rate-limit headers lower it where the account allows
        # less, before any 429 from then on (a smaller account meets one burst of quick 429s, then waits
        # for its window: no task is lost).
        Throttle(settings.max_concurrency),
        retry_cap_s=settings.retry_cap_s,
        workspace=workspace,
        endpoint=batch.endpoint,
    )
    commands = {name: CommandBackend(name, spec, settings.roots) for name, spec in settings.commands.items()}
    return Roster({api.name: api, **commands, batch.name: batch}, default=settings.backend)


@asynccontextmanager
async def open_runtime(settings: Settings, backend: Backend | None = None) -> AsyncGenerator[Runtime, None]:
    """Open the task store, the client, the backends (unless one is given), the registry and the
    synthesizer; with ``--executor temporal``, the connection to Temporal (and with ``--worker`` a worker).

    Raises:
        ValueError: the price file cannot be used.
        StoreUnavailable: the task store cannot be used.
        BackendUnavailable: Temporal cannot be reached.
    """
    workshop = Workshop(state_dir(settings))
    await workshop.open(settings.retention_s)  # what a server that died left, what is past retention
    # The sweeps run beside everything else; an exception from the body is re-raised as itself once
    # they have stopped, not wrapped in an exception group (they never raise but cancellation).
    error: Exception | None = None
    async with anyio.create_task_group() as tidying:
        tidying.start_soon(workshop.tidy, settings.retention_s)
        try:
            async with _open_store_and_registry(settings, backend, workshop) as runtime:
                yield runtime
        except Exception as exc:
            error = exc
        finally:
            tidying.cancel_scope.cancel()
    if error is not None:
        raise error


@asynccontextmanager
async def _open_store_and_registry(
    settings: Settings, backend: Backend | None, workshop: Workshop
) -> AsyncGenerator[Runtime, None]:
    prices = PriceTable.load(settings.prices_file)
    files = make_files(settings)
    # The store outlives the registry: the ends of the tasks the registry cancels as it closes are
    # written before the store closes.
    async with open_placement(settings) as placement:
        store, executor = placement.store, placement.executor
        if backend is not None:
            roster = Roster.single(backend)
            async with open_registry(settings, roster, prices, files, store, executor) as registry:
                yield _compose(settings, roster, files, registry, workshop)
            return
        async with (
            open_backends(settings, prices, files) as roster,
            placement.worker(roster, prices),
            open_registry(settings, roster, prices, files, store, executor) as registry,
        ):
            yield _compose(settings, roster, files, registry, workshop)


@asynccontextmanager
async def open_backends(
    settings: Settings, prices: PriceTable, files: FileReader
) -> AsyncGenerator[Roster, None]:
    """The client and every backend of the settings, the batch backend's drivers running."""
    client = make_client(settings)
    try:
        # The batch backend's drivers outlive the registry's tasks: a task cancelled at shutdown can
        # still cancel its batch at the provider, and then the drivers stop.
        endpoint = make_endpoint(settings, client)
        async with BatchBackend(client, prices, endpoint=endpoint).running() as batch:
            yield make_roster(settings, client, batch, files)
    finally:
        with anyio.move_on_after(5, shield=True):
            await client.close()


def _compose(
    settings: Settings, roster: Roster, files: FileReader, registry: TaskRegistry, workshop: Workshop
) -> Runtime:
    synthesizer = Synthesizer(registry, settings, roster)
    return Runtime(settings, roster, files, registry, synthesizer, workshop)
