"""Which backend a task runs on: by name, by alias, or automatically; and clear refusals otherwise."""

from __future__ import annotations

import pytest

from server import BackendUnavailable, InvalidInput
from server.backends.roster import Roster
from tests.server.fakes import ScriptedBackend


class Named(ScriptedBackend):
    def __init__(self, name: str, unavailable: str | None = None) -> None:
        super().__init__()
        self._name = name
        self.unavailable = unavailable

    @property
    def name(self) -> str:
        return self._name


def roster(*backends: Named, default: str = "auto") -> Roster:
    return Roster({b.name: b for b in backends}, default=default)


def test_auto_prefers_the_api_then_the_claude_cli() -> None:
    api, claude, codex = Named("anthropic"), Named("claude"), Named("codex")
    assert roster(codex, claude, api).choose(None) is api
    api.unavailable = "no key: set ANTHROPIC_API_KEY"
    assert roster(codex, claude, api).choose("auto") is claude


def test_auto_with_nothing_usable_says_what_to_configure_for_each_and_what_else_would_run() -> None:
    api = Named("anthropic", "no key: set ANTHROPIC_API_KEY")
    claude = Named("claude", "the `claude` command is not on PATH: install Claude Code")
    with pytest.raises(BackendUnavailable) as caught:
        roster(api, claude, Named("codex")).choose(None)
    message = str(caught.value)
    assert "ANTHROPIC_API_KEY" in message and "install Claude Code" in message
    assert "Usable here, if named in a task's backend: codex" in message


def test_a_named_backend_is_used_and_cli_means_claude() -> None:
    api, claude = Named("anthropic"), Named("claude")
    both = roster(api, claude)
    assert both.choose("claude") is claude
    assert both.choose("cli") is claude
    assert both.choose("anthropic") is api


def test_an_unknown_name_is_refused_with_the_names_on_offer() -> None:
    with pytest.raises(
        InvalidInput, match=r"'bash' is not one this server offers; choose one of 'auto', 'anthropic'"
    ):
        roster(Named("anthropic")).choose("bash")
    with pytest.raises(InvalidInput, match="'batch' is not one this server offers"):
        roster(Named("anthropic")).choose("batch")


def test_a_named_backend_that_cannot_run_says_why() -> None:
    claude = Named("claude", "the `claude` command is not on PATH")
    with pytest.raises(BackendUnavailable, match="backend 'claude' cannot run here: the `claude` command"):
        roster(Named("anthropic"), claude).choose("claude")


def test_the_default_backend_is_used_when_a_task_names_none() -> None:
    api, codex = Named("anthropic"), Named("codex")
    chosen = roster(api, codex, default="codex")
    assert chosen.choose(None) is codex
    assert chosen.default_usable()
    codex.unavailable = "not installed"
    assert not chosen.default_usable()


def test_a_default_that_is_not_on_offer_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="default backend 'codex'"):
        roster(Named("anthropic"), default="codex")


def test_a_spawns_own_backend_joins_the_roster_for_that_spawn_only_and_comes_last_in_auto() -> None:
    api, claude = Named("anthropic", "no key"), Named("claude", "not installed")
    base = roster(api, claude)
    sampling = Named("sampling")
    spawn = base.with_extra({"sampling": sampling})
    assert spawn.choose(None) is sampling
    assert spawn.choose("sampling") is sampling
    with pytest.raises(InvalidInput, match="exists only for tasks spawned by an MCP client"):
        base.choose("sampling")
    api.unavailable = None
    assert spawn.choose(None) is api  # the client's model is the last resort


def test_auto_never_picks_batch_even_when_it_is_the_only_usable_backend() -> None:
    with pytest.raises(BackendUnavailable):
        roster(Named("batch")).choose(None)
    assert roster(Named("batch")).choose("batch").name == "batch"
