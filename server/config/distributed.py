"""Settings for running tasks elsewhere: which executor runs them, and where a Temporal cluster is.

The embedded executor (the default) runs every task in this process. ``--executor temporal`` runs each
spawn as a Temporal workflow on the workers of ``--task-queue`` (``server/executors/temporal/``); the
server then needs the optional extra ``fanout-mcp[temporal]``. ``--worker`` makes the server one of
those workers too, so that one replica is complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from .option import Option

Executor = Literal["embedded", "temporal"]


class DistributedSettings(BaseModel):
    """The executor part of ``Settings``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    executor: Executor = "embedded"
    temporal_address: Annotated[str, Field(min_length=1)] = "127.0.0.1:7233"
    temporal_namespace: Annotated[str, Field(min_length=1)] = "default"
    task_queue: Annotated[str, Field(min_length=1)] = "fanout-mcp"
    worker: bool = False


DISTRIBUTED_OPTIONS: Final[Mapping[str, Option]] = {
    "executor": Option(
        "--executor",
        "FANOUT_EXECUTOR",
        "where tasks run: embedded (in this process) or temporal (as workflows on the workers of "
        "--task-queue; needs fanout-mcp[temporal]) (default: embedded)",
        metavar="NAME",
    ),
    "temporal_address": Option(
        "--temporal-address",
        "FANOUT_TEMPORAL_ADDRESS",
        "--executor temporal: the Temporal frontend, host:port (default: 127.0.0.1:7233)",
        metavar="HOST:PORT",
    ),
    "temporal_namespace": Option(
        "--temporal-namespace",
        "FANOUT_TEMPORAL_NAMESPACE",
        "--executor temporal: the Temporal namespace (default: default)",
        metavar="NAME",
    ),
    "task_queue": Option(
        "--task-queue",
        "FANOUT_TASK_QUEUE",
        "--executor temporal: the task queue that workflows and activities run on (default: fanout-mcp)",
        metavar="NAME",
    ),
    "worker": Option(
        "--worker",
        "FANOUT_WORKER",
        "--executor temporal: this server is also a worker of --task-queue, so one replica is complete "
        "(a switch; true or false in the environment and the file) (default: off)",
        switch=True,
    ),
}
