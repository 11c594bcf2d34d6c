"""Which backends this server offers, and which one a task runs on.

A task names its backend (``backend``), or its spawn does, or the server's default applies. ``auto``
takes the first usable one of the Anthropic API, the ``claude`` CLI and the client's own model (MCP
sampling), in that order; ``cli`` means the ``claude`` preset. Every other name must be one the roster
holds: the calling model chooses among configured backends by name and can never make the server run
anything else. A spawn may add backends of its own for its tasks (``with_extra``): sampling is bound to
the MCP session that spawned the tasks, so it exists per spawn, not per server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ..core.errors import BackendUnavailable, InvalidInput
from . import Backend

AUTO: Final = "auto"
AUTO_ORDER: Final = ("anthropic", "claude", "sampling")
ALIASES: Final[Mapping[str, str]] = {"cli": "claude", "api": "anthropic"}
# Named by the design but not offered here: say why rather than "unknown".
NOT_HERE: Final[Mapping[str, str]] = {
    "sampling": "backend 'sampling' (the client's own model) exists only for tasks spawned by an MCP client",
}
# Never picked by auto: a batch takes up to a day, which a caller must ask for.
NEVER_AUTO: Final = frozenset({"batch"})


@dataclass(frozen=True, slots=True)
class Status:
    """One backend as ``doctor`` and errors describe it."""

    name: str
    reason: str | None  #: why it cannot run here, or None when it can

    @property
    def usable(self) -> bool:
        return self.reason is None


class Roster:
    """The backends by name, and the rule that picks one."""

    def __init__(self, backends: Mapping[str, Backend], default: str = AUTO) -> None:
        self._backends = dict(backends)
        self._default = default
        if default != AUTO and self._canonical(default) not in self._backends:
            raise ValueError(f"the default backend {default!r} is not one of {self.names()}")

    @classmethod
    def single(cls, backend: Backend) -> Roster:
        """A roster of one backend that is also the default (tests, embedding)."""
        return cls({backend.name: backend}, default=backend.name)

    def names(self) -> list[str]:
        """Every name a task may give, ``auto`` first."""
        return [AUTO, *self._backends]

    def get(self, name: str) -> Backend:
        """The backend registered as ``name`` (as resolved by ``choose``)."""
        return self._backends[name]

    def choose(self, name: str | None) -> Backend:
        """The backend a task that asked for ``name`` (None: the default) runs on.

        Raises:
            InvalidInput: no backend has that name.
            BackendUnavailable: it exists but cannot run here; the message says what to configure.
        """
        wanted = name or self._default
        if wanted == AUTO:
            return self._automatic()
        canonical = self._canonical(wanted)
        backend = self._backends.get(canonical)
        if backend is None:
            raise InvalidInput(self._unknown(wanted))
        reason = backend.unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(f"backend {canonical!r} cannot run here: {reason}")
        return backend

    def with_extra(self, extra: Mapping[str, Backend]) -> Roster:
        """This roster plus ``extra`` (a spawn's own backends), with the same default."""
        if not extra:
            return self
        return Roster({**self._backends, **extra}, default=self._default)

    def default_usable(self) -> bool:
        """Whether a task that names no backend could run now."""
        try:
            self.choose(None)
        except (InvalidInput, BackendUnavailable):
            return False
        return True

    def statuses(self) -> list[Status]:
        return [Status(name, backend.unavailable_reason()) for name, backend in self._backends.items()]

    def _automatic(self) -> Backend:
        candidates = [n for n in AUTO_ORDER if n in self._backends]
        candidates = candidates or [n for n in self._backends if n not in NEVER_AUTO]
        reasons: list[str] = []
        for candidate in candidates:
            backend = self._backends[candidate]
            reason = backend.unavailable_reason()
            if reason is None:
                return backend
            reasons.append(f"{candidate}: {reason}")
        raise BackendUnavailable("no backend can run here. " + " ".join(reasons) + self._others(candidates))

    def _others(self, tried: Sequence[str]) -> str:
        usable = [s.name for s in self.statuses() if s.usable and s.name not in tried]
        return f" Usable here, if named in a task's backend: {', '.join(usable)}." if usable else ""

    def _canonical(self, name: str) -> str:
        return ALIASES.get(name, name)

    def _unknown(self, name: str) -> str:
        offered = ", ".join(repr(n) for n in self.names())
        if name in NOT_HERE:
            return f"{NOT_HERE[name]}; choose one of {offered}."
        return (
            f"backend {name!r} is not one this server offers; choose one of {offered}. Other commands can "
            "only be added by the server's operator, in its configuration file."
        )
