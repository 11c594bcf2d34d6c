"""The configuration file: settings and commands in TOML or JSON, below the environment and the flags,
and every mistake named with the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import SettingsError, load_settings
from server.config.commands import PRESETS


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_file_sets_settings_and_commands_with_paths_from_its_own_directory(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    config = write(
        tmp_path / "fanout.toml",
        """
roots = ["src"]
max_concurrency = 7
backend = "mine"

[commands.mine]
argv = ["my-agent", "--ask", "{prompt}"]
output = "json"
field = "data.answer"
pass_env = ["MY_AGENT_KEY"]
cwd = "src"
""",
    )
    settings = load_settings({"config_file": str(config)}, environ={})
    assert settings.roots == ((tmp_path / "src").resolve(),)
    assert settings.max_concurrency == 7
    assert settings.backend == "mine"
    mine = settings.commands["mine"]
    assert (mine.program, mine.output, mine.field, mine.prompt_on_stdin) == (
        "my-agent",
        "json",
        "data.answer",
        False,
    )
    assert mine.cwd == (tmp_path / "src").resolve()
    assert settings.commands["claude"] == PRESETS["claude"]  # the presets stay


def test_a_preset_table_changes_only_the_keys_it_gives(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml", '[commands.claude]\npass_env = ["ANTHROPIC_API_KEY"]\nmax_concurrency = 2\n'
    )
    claude = load_settings({"config_file": str(config), "roots": [str(tmp_path)]}, environ={}).commands[
        "claude"
    ]
    assert claude.pass_env == ("ANTHROPIC_API_KEY",)
    assert claude.max_concurrency == 2
    assert claude.argv == PRESETS["claude"].argv


def test_the_environment_and_the_flags_beat_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.json", '{"max_concurrency": 7, "task_timeout_s": 30, "model": "from-file"}')
    settings = load_settings(
        {"config_file": str(config), "max_concurrency": "3", "roots": [str(tmp_path)]},
        environ={"FANOUT_TASK_TIMEOUT": "40"},
    )
    assert (settings.max_concurrency, settings.task_timeout_s, settings.model) == (3, 40, "from-file")


def test_the_file_can_be_named_by_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "max_tasks_per_spawn = 9\n")
    settings = load_settings({"roots": [str(tmp_path)]}, environ={"FANOUT_CONFIG": str(config)})
    assert settings.max_tasks_per_spawn == 9


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("max_concurency = 3\n", r"unknown key 'max_concurency'.*max_concurrency"),
        ("max_concurrency = 0\n", r"c\.toml: max_concurrency: .*greater than or equal to 1"),
        ("max_concurrency = \n", r"not valid TOML"),
        ('[commands.mine]\noutput = "text"\n', r"commands\.mine: argv is required"),
        ('[commands.mine]\nargv = ["x"]\noutput = "yaml"\n', r"commands\.mine\.output: "),
        ('[commands.mine]\nargv = ["x"]\ncolour = "red"\n', r"commands\.mine\.colour: "),
        ('[commands.mine]\nargv = ["x", "{model}"]\n', r"commands\.mine\.argv: .*model_args"),
        ('[commands.auto]\nargv = ["x"]\n', r"command name 'auto'"),
        ('[commands.api]\nargv = ["x"]\n', r"command name 'api'"),  # an alias: it would be shadowed
        (
            '[commands.mine]\nargv = ["x"]\ncwd = "nowhere"\n',
            r"commands\.mine\.cwd: .*not an existing directory",
        ),
        ('backend = "nobody"\n', r"backend 'nobody' is not one of"),
        ("roots = 3\n", r"roots must be a path or a list of paths"),
        ("commands = 3\n", r"commands must be a table"),
    ],
)
def test_a_bad_file_names_the_file_the_key_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    config = write(tmp_path / "c.toml", text)
    with pytest.raises(SettingsError, match=problem) as caught:
        load_settings({"config_file": str(config), "roots": [str(tmp_path)]}, environ={})
    assert "c.toml" in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nothing\.toml: cannot be read"):
        load_settings({"config_file": str(tmp_path / "nothing.toml"), "roots": [str(tmp_path)]}, environ={})


@pytest.mark.parametrize(
    "bad",
    [
        '[commands.Bad]\nargv = ["x"]\n',  # the error is about the whole table of commands
        '[commands.mine]\nargv = ["x"]\nenv = {OTHER = 3}\n',  # the error is inside an env
    ],
)
def test_a_bad_command_table_never_shows_a_commands_environment(tmp_path: Path, bad: str) -> None:
    text = '[commands.claude]\nargv = ["claude"]\nenv = {ANTHROPIC_API_KEY = "sk-ant-SECRET"}\n' + bad
    config = write(tmp_path / "c.toml", text)
    with pytest.raises(SettingsError, match=r"c\.toml") as caught:
        load_settings({"config_file": str(config), "roots": [str(tmp_path)]}, environ={})
    assert "sk-ant-SECRET" not in str(caught.value)


def test_batch_can_be_the_default_backend(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'backend = "batch"\n')
    assert (
        load_settings({"config_file": str(config), "roots": [str(tmp_path)]}, environ={}).backend == "batch"
    )
