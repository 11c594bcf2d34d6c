"""Who asks: the principal a task belongs to, and whether it may see everyone's.

Every task and group is owned by the principal that spawned it (``TaskRecord.owner``). Another
principal's ids answer exactly as ids that never existed, so that nobody learns which ids exist; an
operator sees and cancels every task. Over stdio the principal is the local user (``Caller.local``);
over HTTP the MCP layer names it from the verified access token.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

LOCAL_PREFIX = "local:"


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal of a call, and whether it is an operator (sees and cancels every task)."""

    principal: str
    operator: bool = False

    @classmethod
    def local(cls, operator: bool = False) -> Caller:
        """The user this process runs as, ``local:NAME``: the principal of stdio and of the ``run``
        command. The prefix keeps it apart from an HTTP token's principal of the same name (a token's name
        has no ``:``) when stdio and HTTP servers share one store."""
        try:
            name = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
            name = f"uid-{os.getuid()}"
        return cls(f"{LOCAL_PREFIX}{name}", operator)

    def sees(self, owner: str) -> bool:
        """Whether this caller may see (and cancel) what ``owner`` spawned."""
        return self.operator or owner == self.principal

    @property
    def owner_filter(self) -> str | None:
        """The owner a store read keeps to: this principal, or None (everyone's) for an operator."""
        return None if self.operator else self.principal
