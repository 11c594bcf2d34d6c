"""A job as each protocol era writes a task: the 2026-07-28 extension's fields (``ttlMs``,
``pollIntervalMs``) or the 2025-11-25 core ones (``ttl``, ``pollInterval``)."""

from __future__ import annotations

from typing import Any, Final

from .book import Job

EXTENSION: Final = "io.modelcontextprotocol/tasks"
RELATED: Final = "io.modelcontextprotocol/related-task"
NOT_FOUND: Final = "Failed to retrieve task: Task not found"


def extension_task(job: Job, *, detailed: bool) -> dict[str, Any]:
    """The task as the extension's ``tasks/get`` (``detailed``: with its result or error) and its
    ``CreateTaskResult`` write it."""
    task = _common(job) | {"ttlMs": job.ttl_ms, "pollIntervalMs": job.poll_interval_ms}
    if detailed and job.status == "completed":
        task["result"] = job.result
    if detailed and job.status == "failed":
        task["error"] = job.error
    return task


def core_task(job: Job) -> dict[str, Any]:
    """The task as 2025-11-25's ``Task``."""
    return _common(job) | {"ttl": job.ttl_ms, "pollInterval": job.poll_interval_ms}


def _common(job: Job) -> dict[str, Any]:
    task: dict[str, Any] = {
        "taskId": job.task_id,
        "status": job.status,
        "createdAt": job.created_at,
        "lastUpdatedAt": job.last_updated_at,
    }
    if job.status_message is not None:
        task["statusMessage"] = job.status_message
    return task
