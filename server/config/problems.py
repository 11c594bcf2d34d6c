"""What is wrong with a configuration, said by where each bad value came from: a flag, an environment
variable, or a key of the configuration file, and never echoing what may be a secret."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .option import Option


def describe_problems(
    exc: ValidationError, sources: Mapping[str, str], config_path: Any, options: Mapping[str, Option]
) -> str:
    """One line naming each bad setting by where it was given (its flag, its variable, or the file and
    the key in it) and what is wrong with it."""
    problems: list[str] = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "settings"
        option = options.get(name)
        source = sources.get(name)
        if source == "flag" and option is not None:
            where = option.flag
        elif source == "env" and option is not None:
            where = option.env
        elif source == "file" or name == "commands":
            path = ".".join(str(part) for part in err["loc"])
            where = f"{config_path}: {path}"
        else:
            where = name
        shown = f" (got {_shown(err.get('input'))})" if _may_show(err["loc"], err.get("input")) else ""
        problems.append(f"{where}: {err['msg']}{shown}")
    return "invalid configuration: " + "; ".join(problems)


def _may_show(loc: tuple[int | str, ...], value: Any) -> bool:
    """Whether an invalid input can be echoed: a command's ``env`` may hold secrets (API keys), and
    whole tables of commands hold their ``env``; the error goes to stderr, which clients keep in logs."""
    if not loc or loc[0] != "commands":
        return True
    return "env" not in loc and not isinstance(value, Mapping | BaseModel)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
