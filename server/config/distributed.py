"""Settings for running tasks elsewhere: which executor runs them, and where a Temporal cluster is.

The embedded executor (the default) runs every task in this process. ``--executor temporal`` runs each
spawn as a Temporal workflow on the workers of ``--task-queue`` (``server/executors/temporal/``); the
server then needs the optional extra ``fanout-mcp[temporal]``. ``--worker`` makes the server one of
those workers too, so that one replica is complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .option import Option

Executor = Literal["embedded", "temporal"]


class DistributedSettings(BaseModel):
    """The executor part of ``Settings``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    executor: Executor = "embedded"
    temporal_address: Annotated[str, Field(min_length=1)] = "127.0.0.1:7233"
    temporal_namespace: Annotated[str, Field(min_length=1)] = "default"
    task_queue: Annotated[str, Field(min_length=1)] = "fanout-mcp"
    #: subagent calls started a minute by all the workers of the task queue together (None: no limit)
    task_queue_rpm: Annotated[int, Field(ge=1)] | None = None
    worker: bool = False
    temporal_tls: bool = False  #: TLS with the system's roots (implied by the three files and the key)
    temporal_tls_ca: Path | None = None  #: the cluster's CA certificate (PEM), when not a public one
    temporal_tls_cert: Path | None = None  #: this process's client certificate (mTLS), with its key
    temporal_tls_key: Path | None = None
    temporal_api_key_file: Path | None = None  #: a file holding the API key (Temporal Cloud)
    #: where payloads over Temporal's limits are kept by reference (None: beside the task store)
    temporal_payload_dir: Path | None = None

    @model_validator(mode="after")
    def _files_usable(self) -> Self:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("--temporal-tls-cert and --temporal-tls-key go together: give both or neither")
        for path in (
            self.temporal_tls_ca,
            self.temporal_tls_cert,
            self.temporal_tls_key,
            self.temporal_api_key_file,
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{path} is not a readable file")
        return self


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
    "task_queue_rpm": Option(
        "--task-queue-rpm",
        "FANOUT_TASK_QUEUE_RPM",
        "--executor temporal, on workers: the most subagent calls a minute that all the workers of "
        "--task-queue start together (Temporal's task-queue rate limit; give every worker the same, "
        "e.g. the account's requests a minute) (default: none: each worker follows the provider's "
        "rate-limit headers on its own)",
        metavar="CALLS",
    ),
    "worker": Option(
        "--worker",
        "FANOUT_WORKER",
        "--executor temporal: this server is also a worker of --task-queue, so one replica is complete "
        "(a switch; true or false in the environment and the file) (default: off)",
        switch=True,
    ),
    "temporal_payload_dir": Option(
        "--temporal-payload-dir",
        "FANOUT_TEMPORAL_PAYLOAD_DIR",
        "--executor temporal: where payloads of 256 KiB or more (a spawn's prompts and files, long "
        "answers) are kept, Temporal's history holding a reference: a directory every front end and "
        "worker shares (a shared mount across machines); kept for --retention after last use "
        "(default: temporal-payloads beside the task store)",
        metavar="DIR",
    ),
    "temporal_tls": Option(
        "--temporal-tls",
        "FANOUT_TEMPORAL_TLS",
        "--executor temporal: connect with TLS, trusting the system's roots (a switch; implied by the "
        "TLS files and the API key) (default: off: plaintext, as a dev server speaks)",
        switch=True,
    ),
    "temporal_tls_ca": Option(
        "--temporal-tls-ca",
        "FANOUT_TEMPORAL_TLS_CA",
        "--executor temporal: the cluster's CA certificate (PEM) to trust instead of the system's roots",
        metavar="FILE",
    ),
    "temporal_tls_cert": Option(
        "--temporal-tls-cert",
        "FANOUT_TEMPORAL_TLS_CERT",
        "--executor temporal: this process's client certificate (PEM) for mutual TLS, with "
        "--temporal-tls-key",
        metavar="FILE",
    ),
    "temporal_tls_key": Option(
        "--temporal-tls-key",
        "FANOUT_TEMPORAL_TLS_KEY",
        "--executor temporal: the private key (PEM) of --temporal-tls-cert",
        metavar="FILE",
    ),
    "temporal_api_key_file": Option(
        "--temporal-api-key-file",
        "FANOUT_TEMPORAL_API_KEY_FILE",
        "--executor temporal: file holding the cluster's API key (Temporal Cloud), sent as a bearer token "
        "over TLS; a file, so that no process listing or log shows it",
        metavar="FILE",
    ),
}
