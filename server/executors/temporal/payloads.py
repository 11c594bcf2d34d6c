"""Payloads over Temporal's limits, kept by reference: a spawn's input holds every task's prompt and
files (100 tasks of 200 KB files is 20 MB), and Temporal refuses a payload over 2 MB and a message over
4 MB. Payloads of ``THRESHOLD`` bytes or more go to a directory that every front end and worker of the
cluster shares (a shared mount across machines), as files named by their SHA-256, and Temporal's
history holds the reference.

This is a driver of the SDK's own external storage (``temporalio.converter.ExternalStorage``, which
decides what to store, marks the references and reads them back), so that a bucket (the SDK's S3 and GCS
drivers) could take its place without changing the rest. Files are written once (same content, same
name: a payload stored again only refreshes the file's time) and removed by ``sweep`` after the
server's ``--retention`` since they were last stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import anyio
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from ...config.settings import Settings, default_store
from ...core.durable import store_path
from ...core.errors import BackendUnavailable

logger = logging.getLogger(__name__)

#: payloads this size or larger are stored by reference (the SDK's default; Temporal warns at 512 KiB)
THRESHOLD: Final = 256 * 1024
SWEEP_EVERY_S: Final = 3600.0
_NAME: Final = "fanout-directory"
_DIGEST: Final = "sha256"


class PayloadMissing(BackendUnavailable):
    """A payload stored by reference cannot be read where this process looks for it."""


class DirectoryDriver(StorageDriver):
    """Keeps payloads as files of one directory, named by their SHA-256 (see the module)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def name(self) -> str:
        return _NAME

    def type(self) -> str:
        return _NAME

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        blobs = [payload.SerializeToString() for payload in payloads]
        digests = await anyio.to_thread.run_sync(self._write_all, blobs)
        return [StorageDriverClaim({_DIGEST: digest}) for digest in digests]

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        digests = [claim.claim_data.get(_DIGEST, "") for claim in claims]
        blobs = await anyio.to_thread.run_sync(self._read_all, digests)
        return [Payload.FromString(blob) for blob in blobs]

    # --- in a worker thread: files --------------------------------------------------------------------

    def _write_all(self, blobs: list[bytes]) -> list[str]:
        return [self._write(blob) for blob in blobs]

    def _write(self, blob: bytes) -> str:
        digest = hashlib.sha256(blob).hexdigest()
        path = self._path(digest)
        if path.exists():
            os.utime(path)  # stored again: kept for another --retention
            return digest
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        # Whole or not at all: another process may store the same payload at the same moment, and a
        # reader must never see half of one.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as file:  # mkstemp makes it 0600: prompts and files are private
                file.write(blob)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def _read_all(self, digests: list[str]) -> list[bytes]:
        return [self._read(digest) for digest in digests]

    def _read(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise PayloadMissing(
                f"a payload Temporal holds by reference cannot be read at {path} ({exc.strerror}): give "
                "every front end and worker the same --temporal-payload-dir (a directory they all share)"
            ) from None
        if hashlib.sha256(blob).hexdigest() != digest:
            raise PayloadMissing(f"the payload at {path} is not the one stored (its SHA-256 differs)")
        return blob

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise PayloadMissing(f"a payload reference names no stored payload ({digest[:80]!r})")
        return self._directory / digest[:2] / digest


def external_storage(directory: Path) -> ExternalStorage:
    """The data converter's external storage: payloads of ``THRESHOLD`` bytes or more in ``directory``."""
    return ExternalStorage(drivers=[DirectoryDriver(directory)], payload_size_threshold=THRESHOLD)


def payload_dir(settings: Settings) -> Path:
    """The settings' ``--temporal-payload-dir``, or ``temporal-payloads`` beside the task store."""
    if settings.temporal_payload_dir is not None:
        return settings.temporal_payload_dir.expanduser()
    return (store_path(settings) or default_store()).parent / "temporal-payloads"


async def keep_swept(directory: Path, retention_s: float) -> None:
    """``sweep`` now and every ``SWEEP_EVERY_S``, until cancelled."""
    while True:
        removed = await anyio.to_thread.run_sync(sweep, directory, retention_s)
        if removed:
            logger.info(
                "removed %d payloads last stored over %.0f s ago from %s", removed, retention_s, directory
            )
        await anyio.sleep(SWEEP_EVERY_S)


def sweep(directory: Path, older_than_s: float) -> int:
    """Remove the payloads last stored more than ``older_than_s`` ago (blocking: run it in a thread);
    return how many. A file another process is writing is a ``.part-`` file younger than that."""
    removed = 0
    cutoff = time.time() - older_than_s
    for path in directory.glob("??/*") if directory.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError as exc:  # another process removed it first, or it cannot be: the next sweep
            logger.debug("could not remove %s: %s", path, exc)
    return removed
