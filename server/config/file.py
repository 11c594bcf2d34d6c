"""The configuration file (``--config``): settings and agent CLI commands in one TOML or JSON file.

::

    # fanout.toml
    roots = ["~/src/shop"]          # any setting, by the name in the README's configuration table
    max_concurrency = 10
    backend = "claude"              # where tasks that name no backend run

    [commands.claude]               # change a preset: only the keys given replace the preset's
    pass_env = ["ANTHROPIC_API_KEY"]

    [commands.llm]                  # a command of your own
    argv = ["llm", "-m", "gpt-5", "{prompt}"]
    output = "text"

Relative paths (``roots``, ``prices_file``, a command's ``cwd``) are taken from the file's directory. An
unknown key, a wrong value or an unreadable file stops the server at start with a message that names
the file, the key and the problem.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Set
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from .commands import PRESETS, CommandSpec, command_from_config

_PATH_KEYS = ("prices_file", "auth_tokens", "oauth_client_secret_file")


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the file, the key and the problem."""


def read_config(path: Path, keys: Set[str]) -> dict[str, Any]:
    """The settings in ``path``, as keyword arguments for ``Settings`` (commands already merged with
    the presets).

    Raises:
        ConfigError: the file is unreadable, malformed, or has an unknown key or a bad command.
    """
    path = path.expanduser()
    raw = _parse(path)
    unknown = sorted(set(raw) - set(keys) - {"commands"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; the keys are the settings' names "
            f"({', '.join(sorted(keys))}) and [commands.NAME] tables"
        )
    base = path.resolve().parent
    values = {key: value for key, value in raw.items() if key != "commands"}
    if "roots" in values:
        values["roots"] = [_relative_to(base, root) for root in _as_list(path, "roots", values["roots"])]
    for key in _PATH_KEYS:
        if isinstance(values.get(key), str):
            values[key] = _relative_to(base, values[key])
    if "commands" in raw:
        values["commands"] = {**PRESETS, **_commands(path, base, raw["commands"])}
    return values


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML (name the file *.json for JSON)"
        raise ConfigError(f"{path}: is not valid {kind}: {exc}") from None
    table = _table(data)
    if table is None:
        raise ConfigError(f"{path}: must hold a table (an object) of settings at the top")
    return table


def _table(value: Any) -> dict[str, Any] | None:
    # TOML tables always have string keys; JSON objects too.
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def _commands(path: Path, base: Path, raw: Any) -> dict[str, CommandSpec]:
    tables = _table(raw)
    if tables is None:
        raise ConfigError(f"{path}: commands must be a table of [commands.NAME] tables")
    commands: dict[str, CommandSpec] = {}
    for name, value in tables.items():
        table = _table(value)
        if table is None:
            raise ConfigError(f"{path}: commands.{name} must be a table (argv, output, ...)")
        fields = dict(table)
        if isinstance(fields.get("cwd"), str):
            fields["cwd"] = _relative_to(base, fields["cwd"])
        try:
            commands[name] = command_from_config(name, fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(part) for part in err["loc"]) or "(the table)"
            if "argv" not in fields and name not in PRESETS and err["loc"] == ("argv",):
                raise ConfigError(
                    f"{path}: commands.{name}: argv is required for a command of your own"
                ) from None
            raise ConfigError(f"{path}: commands.{name}.{key}: {err['msg']}") from None
    return commands


def _as_list(path: Path, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = cast(list[Any], value) if isinstance(value, list) else None
    if items is not None and all(isinstance(item, str) for item in items):
        return [str(item) for item in items]
    raise ConfigError(f"{path}: {key} must be a path or a list of paths")


def _relative_to(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)
