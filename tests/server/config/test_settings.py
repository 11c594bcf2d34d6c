from __future__ import annotations

import os
from pathlib import Path

import pytest

from server import OPTIONS, Settings, SettingsError, load_settings


def test_defaults_match_the_documented_ones(tmp_path: Path) -> None:
    settings = load_settings({"roots": [str(tmp_path)]}, environ={})
    assert settings.max_concurrency == 1000
    assert settings.max_tasks_per_spawn == 100
    assert settings.task_timeout_s == 600
    assert settings.default_wait_s == 25 and settings.max_wait_s == 50
    assert settings.retention_s == 86_400 and settings.max_finished == 10_000
    assert settings.model == "claude-sonnet-5-5"


def test_environment_then_flags(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    environ = {
        "FANOUT_MAX_CONCURRENCY": "7",
        "FANOUT_ROOTS": f"{tmp_path}{os.pathsep}{other}",
        "FANOUT_MODEL": "claude-haiku-5-5",
    }
    settings = load_settings({"max_concurrency": "3"}, environ=environ)
    assert settings.max_concurrency == 3
    assert settings.model == "claude-haiku-5-5"
    assert settings.roots == (tmp_path.resolve(), other.resolve())


def test_a_bad_value_names_the_flag_or_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="--max-concurrency"):
        load_settings({"max_concurrency": "0", "roots": [str(tmp_path)]}, environ={})
    with pytest.raises(SettingsError, match="FANOUT_TASK_TIMEOUT"):
        load_settings({"roots": [str(tmp_path)]}, environ={"FANOUT_TASK_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match=r"--root.*not an existing directory"):
        load_settings({"roots": [str(tmp_path / "missing")]}, environ={})
    with pytest.raises(SettingsError, match="--log-level"):
        load_settings({"roots": [str(tmp_path)], "log_level": "loud"}, environ={})


def test_a_bad_price_file_is_rejected_at_start(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text("{")
    with pytest.raises(SettingsError, match=r"--prices.*price file"):
        load_settings({"roots": [str(tmp_path)], "prices_file": str(prices)}, environ={})


def test_every_setting_has_a_flag_and_an_environment_variable() -> None:
    # commands are tables: only the configuration file can hold them
    assert set(OPTIONS) == set(Settings.model_fields) - {"commands"}
    assert len({o.env for o in OPTIONS.values()}) == len(OPTIONS)
    assert all(o.flag.startswith("--") and o.env.startswith("FANOUT_") for o in OPTIONS.values())


def test_the_working_directory_is_the_default_root_but_never_slash_or_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.config.settings import default_roots

    monkeypatch.chdir(tmp_path)
    assert default_roots() == (tmp_path.resolve(),)
    monkeypatch.chdir("/")
    assert default_roots() == ()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert default_roots() == ()
    assert load_settings({}, environ={}).roots == ()


def test_the_executor_is_embedded_unless_temporal_is_chosen_by_flag_variable_or_file(tmp_path: Path) -> None:
    from tools.cli.main import build_parser

    assert load_settings({"roots": [str(tmp_path)]}, environ={}).executor == "embedded"
    args = build_parser().parse_args(["--executor", "temporal", "--worker", "--task-queue", "q1"])
    flags = {name: getattr(args, name) for name in OPTIONS}
    settings = load_settings({**flags, "roots": [str(tmp_path)]}, environ={})
    assert (settings.executor, settings.worker, settings.task_queue) == ("temporal", True, "q1")
    config = tmp_path / "fanout.toml"
    config.write_text('executor = "temporal"\ntemporal_address = "10.0.0.5:7233"\nworker = true\n')
    environ = {"FANOUT_CONFIG": str(config), "FANOUT_TEMPORAL_NAMESPACE": "fanout", "FANOUT_WORKER": "false"}
    settings = load_settings({"roots": [str(tmp_path)]}, environ=environ)
    assert (settings.temporal_address, settings.temporal_namespace) == ("10.0.0.5:7233", "fanout")
    assert settings.worker is False  # the environment beats the file
    with pytest.raises(SettingsError, match="FANOUT_EXECUTOR"):
        load_settings({"roots": [str(tmp_path)]}, environ={"FANOUT_EXECUTOR": "celery"})
