"""Whether the tool call being served may wait, or only look: a call a task-capable client made is first
run as a look (no wait), so that the answer is either ready at once or becomes a task handle."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar

_LOOKING: ContextVar[bool] = ContextVar("fanout_look_only", default=False)


def look_only() -> bool:
    """The call in progress must not wait: a task handle waits for it instead."""
    return _LOOKING.get()


@contextmanager
def looking() -> Generator[None, None, None]:
    """Run what is inside as a look. Reset on the way out, so that nothing started afterwards (a task's
    background work) inherits it."""
    token = _LOOKING.set(True)
    try:
        yield
    finally:
        _LOOKING.reset(token)
