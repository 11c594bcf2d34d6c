"""The worktree settings: sizes with units, comma-separated lists, and setup commands that must be
configured checks, each refused at start with the flag, variable or key named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server import SettingsError, load_settings
from server.config.worktrees import GIB


def test_sizes_take_units_and_lists_commas_from_flags_and_the_environment(tmp_path: Path) -> None:
    environ = {"FANOUT_WORKTREE_LINKS": "node_modules, .venv", "FANOUT_WORKTREE_MIN_FREE": "512M"}
    settings = load_settings({"roots": [str(tmp_path)], "worktree_disk_limit": "1.5G"}, environ=environ)
    assert settings.worktree_disk_limit == int(1.5 * GIB)
    assert settings.worktree_min_free == 512 * 1024**2
    assert settings.worktree_links == ("node_modules", ".venv")


def test_setup_commands_come_from_the_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "fanout.json"
    config.write_text(
        json.dumps({"worktree_setup": ["install"], "commands": {"install": {"argv": ["npm", "ci"]}}})
    )
    settings = load_settings({"roots": [str(tmp_path)], "config_file": str(config)}, environ={})
    assert settings.worktree_setup == ("install",)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (
            {"worktree_setup": "install"},
            "--worktree-setup: Value error, 'install' is not a configured command",
        ),
        ({"worktree_setup": "claude"}, "is not a configured command (configured: none"),
        (
            {"worktree_links": "../elsewhere"},
            "--worktree-links: Value error, '../elsewhere' is not a directory",
        ),
        ({"worktree_disk_limit": "lots"}, "--worktree-disk-limit: Value error, 'lots' is not a size"),
    ],
)
def test_a_bad_worktree_setting_is_refused_at_start_naming_the_flag(
    tmp_path: Path, flags: dict[str, str], said: str
) -> None:
    with pytest.raises(SettingsError, match=said.replace("(", r"\(")):
        load_settings({"roots": [str(tmp_path)], **flags}, environ={})
