"""Telling of retries: every retry of every task is logged as it happens and told to the listeners the
registry's users added (the CLI's live table, for one)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .models import RetryNotice
from .state import ErrorKind


class RetryNotices:
    """Logs each retry on ``logger`` and tells every listener; a listener's bug is logged, never raised."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._listeners: list[Callable[[RetryNotice], None]] = []

    def listen(self, listener: Callable[[RetryNotice], None]) -> None:
        self._listeners.append(listener)

    def tell(self, notice: RetryNotice) -> None:
        # 429/529 at INFO: a big fan-out meets them as a matter of course, and the throttle answers them.
        level = logging.INFO if notice.cause is ErrorKind.RATE_LIMITED else logging.WARNING
        cause = notice.cause.value
        self._logger.log(
            level, "task %s (%s) retrying [%s]: %s", notice.task_id, notice.label, cause, notice.note
        )
        for listener in self._listeners:
            try:
                listener(notice)
            except Exception:  # a listener's bug must not fail the task that is retrying
                self._logger.exception("a retry listener failed")
