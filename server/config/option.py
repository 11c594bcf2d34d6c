"""How one setting is given on the command line and in the environment (``settings.OPTIONS``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is given on the command line and in the environment."""

    flag: str
    env: str
    help: str
    metavar: str = "N"
    switch: bool = False  #: a flag that takes no value (``--worker``); true or false elsewhere
