"""The connection to the Temporal cluster, and the front end's side of the executor: the store and the
executor factory the registry is opened with (``app/runtime.py``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
from temporalio.api.enums.v1 import IndexedValueType, RateLimitSource, TaskQueueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeTaskQueueResponse
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from ...config.settings import Settings
from ...core.errors import BackendUnavailable
from ...core.executor import ExecutorFactory
from . import wire
from .converter import WirePayloadConverter
from .credentials import credentials
from .executor import TemporalExecutor
from .payloads import external_storage, keep_swept, payload_dir
from .store import TemporalStore

logger = logging.getLogger(__name__)

_SEARCH_ATTRIBUTES = {
    wire.OWNER_ATTRIBUTE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    wire.SYNTHESIS_ATTRIBUTE: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


async def connect(settings: Settings) -> Client:
    """A client of the settings' cluster and namespace, its search attributes registered.

    Raises:
        BackendUnavailable: the cluster cannot be reached (the message names the address).
    """
    given = await anyio.to_thread.run_sync(credentials, settings)
    try:
        client = await Client.connect(
            settings.temporal_address,
            data_converter=data_converter(payload_dir(settings)),
            namespace=settings.temporal_namespace,
            tls=given.tls,
            api_key=given.api_key,
        )
    except RuntimeError as exc:  # the SDK's core says so for every failed connect
        raise BackendUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); check --temporal-address "
            "and, for a cluster that speaks TLS, --temporal-tls and its files"
        ) from None
    await _register_search_attributes(client, settings.temporal_namespace)
    return client


def data_converter(payloads: Path) -> DataConverter:
    """How the wire's values travel: as JSON through pydantic (``converter.py`` says why), large ones
    by reference in ``payloads``."""
    storage = external_storage(payloads)
    return DataConverter(payload_converter_class=WirePayloadConverter, external_storage=storage)


async def _register_search_attributes(client: Client, namespace: str) -> None:
    """Add the search attributes the front ends find groups by (an owner's, a model synthesis's), where
    missing. A cluster that refuses (Temporal Cloud registers them in its own console) is told about in
    the log."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {k: v for k, v in _SEARCH_ATTRIBUTES.items() if k not in listed.custom_attributes}
        if missing:
            request = AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            await client.operator_service.add_search_attributes(request)
    except RPCError as exc:
        logger.warning(
            "could not register the search attributes %s in namespace %s (%s): register them yourself "
            "(see the README's Scale out)",
            sorted(_SEARCH_ATTRIBUTES),
            namespace,
            exc.message,
        )


@asynccontextmanager
async def open_temporal(settings: Settings) -> AsyncGenerator[tuple[TemporalStore, ExecutorFactory], None]:
    """Connect, and open the store (reading groups while open) with its executor.

    Raises:
        BackendUnavailable: the cluster cannot be reached.
    """
    client = await connect(settings)
    async with anyio.create_task_group() as tg:
        store = TemporalStore(client, settings.task_queue, tg)
        tg.start_soon(store.keep_in_step, name="fanout temporal reads")
        tg.start_soon(keep_swept, payload_dir(settings), settings.retention_s, name="fanout payload sweep")
        try:
            yield store, partial(TemporalExecutor, store)
        finally:
            tg.cancel_scope.cancel()


async def describe_cluster(settings: Settings) -> tuple[bool, str]:
    """What ``doctor`` says of the settings' cluster: whether it answers, and the workers polling the
    task queue (a spawn waits until one does).

    Bound it with ``fail_after``: a connect to an address that drops packets can take long.
    """
    where = (
        f"{settings.temporal_address}, namespace {settings.temporal_namespace}, "
        f"task queue {settings.task_queue}"
    )
    try:
        client = await connect(settings)
        request = DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            report_config=True,
        )
        described = await client.workflow_service.describe_task_queue(request)
    except (BackendUnavailable, RPCError) as exc:
        return False, f"{where}: {exc}"
    workers = len(described.pollers)
    if not workers:
        return True, f"{where}: reachable, but no worker polls the task queue (start `fanout-mcp worker`)"
    return True, f"{where}: reachable, {workers} worker(s) polling{_rate_of(described)}"


def _rate_of(described: DescribeTaskQueueResponse) -> str:
    """The queue's shared rate limit, when a worker (``--task-queue-rpm``) or an operator set one."""
    limit = described.effective_rate_limit
    if limit.rate_limit_source not in (
        RateLimitSource.RATE_LIMIT_SOURCE_WORKER,
        RateLimitSource.RATE_LIMIT_SOURCE_API,
    ):
        return ""
    return f", together at most {round(limit.requests_per_second * 60)} subagent calls a minute"
