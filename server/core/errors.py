"""The engine's exceptions. Every message is written for the model that called the tool.

::

    FanoutError
    ├── InvalidInput         the caller must change its request (the message says how)
    │   ├── UnknownTask      an id the registry does not know (or has evicted), or another principal's
    │   └── LimitReached     a spawn would pass a principal's limit (the message says which, and what to do)
    ├── BackendUnavailable   the backend cannot run anything here (no API key, ...)
    ├── RegistryClosed       a spawn arrived after shutdown began
    └── TaskFailure          a backend's verdict on one task: an ErrorKind and a message

Programmer errors (an illegal state transition) stay ``RuntimeError``.
"""

from __future__ import annotations

from .state import ErrorKind


class FanoutError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidInput(FanoutError):
    """The request cannot be served as given; the message names the argument and the fix."""


class UnknownTask(InvalidInput):
    """No task or group with this id (never existed, or evicted after its retention time)."""


class LimitReached(InvalidInput):
    """A spawn would pass one of its principal's limits (unfinished tasks, spawns a minute)."""


class BackendUnavailable(FanoutError):
    """The backend cannot be used at all; the message says what to configure."""


class RegistryClosed(FanoutError):
    """The server is shutting down and accepts no new work."""


class TaskFailure(FanoutError):
    """Raised by a backend to fail one task with a classified reason.

    Attributes:
        kind: the stable error kind the caller can branch on.
        message: what happened and what to do, for the calling model.
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
