"""What ``fanout-mcp doctor`` reports: which backends can run here, and what to do about the others.

Nothing here spends tokens: a CLI is asked for its version (and a preset's CLI for its help, to see that
it knows the flags the preset passes), and the API key is looked for; with ``--check`` it is also tried,
with one free request (``count_tokens``) to the endpoint the API backends share.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import anthropic
import anyio

from ..backends.anthropic_api import NAME as API
from ..backends.anthropic_api import AnthropicBackend
from ..backends.batch import NAME as BATCH
from ..backends.cli import CommandBackend
from ..backends.endpoint import Endpoint, Refused
from ..backends.faults import Transient, classify
from ..backends.roster import AUTO, NOT_HERE, Roster
from ..config.commands import PRESETS
from ..config.settings import Settings
from ..core.errors import BackendUnavailable, InvalidInput
from .runtime import make_client, make_roster

# The variables a preset's CLI may be set up through (a provider, a gateway, a model): doctor names those
# set here that the command does not get, since only what its pass_env names reaches it.
_SETUP_PREFIXES = {
    "claude": ("CLAUDE_CODE_", "ANTHROPIC_", "AWS_", "CLOUD_ML_", "VERTEX_", "GOOGLE_"),
    "codex": ("CODEX_", "OPENAI_", "AZURE_OPENAI"),
}

# Backends that depend on something doctor cannot see from here.
_ELSEWHERE = {
    **NOT_HERE,
    "sampling": "depends on the MCP client: usable for tasks spawned by a client that declares sampling, "
    "on a 2025-11-25 session (2026-07-28 sessions have no channel for it); never picked before the "
    "API or the claude CLI",
}


# A check of the endpoint that takes longer is reported as unanswered (the SDK's connect timeout is 10 s).
_CHECK_WAIT_S = 20.0


@dataclass(frozen=True, slots=True)
class BackendCheck:
    name: str
    usable: bool
    detail: str  #: what was found (a version, a path), or why it cannot run and what to do
    failed: bool = False  #: tried (``--check``) and failed: refused, or not reached


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """What the API endpoint answered one free request."""

    failed: bool  #: refused the credentials, or could not be reached
    detail: str


@dataclass(frozen=True, slots=True)
class Checkup:
    backends: list[BackendCheck]
    default: str  #: the --backend setting
    default_resolves_to: str | None  #: the backend a task naming none runs on now, if any
    default_problem: str | None


async def check(settings: Settings, *, try_endpoint: bool = False) -> Checkup:
    """Look at every backend the settings offer; with ``try_endpoint``, also ask the API endpoint."""
    client = make_client(settings)
    try:
        roster = make_roster(settings, client)
        endpoint = await _try_endpoint(roster, settings.model) if try_endpoint else None
        checks = [await _check_one(roster, status.name, status.reason) for status in roster.statuses()]
    finally:
        with anyio.move_on_after(5, shield=True):
            await client.close()
    if endpoint is not None:
        checks = [_with_endpoint(check, endpoint) for check in checks]
    offered = {check.name for check in checks}
    checks += [BackendCheck(name, False, why) for name, why in _ELSEWHERE.items() if name not in offered]
    try:
        chosen: str | None = roster.choose(None).name
        problem = None
    except (InvalidInput, BackendUnavailable) as exc:
        chosen, problem = None, str(exc)
        if settings.backend == AUTO:  # each one's reason is listed above already
            problem = "neither anthropic nor claude can run here: set up one of them (above)"
    if endpoint is not None and endpoint.failed and chosen in {API, BATCH}:
        chosen, problem = None, f"{chosen} failed its check (above)"
    return Checkup(checks, settings.backend, chosen, problem)


async def _try_endpoint(roster: Roster, model: str) -> EndpointCheck | None:
    """One free request to the API endpoint with the credentials; None when there are none to try."""
    api = roster.get(API)
    if not isinstance(api, AnthropicBackend) or api.unavailable_reason() is not None:
        return None
    endpoint = api.endpoint
    started = anyio.current_time()
    try:
        with anyio.fail_after(_CHECK_WAIT_S):
            await endpoint.probe(model)
    except TimeoutError:
        waited = f"{_CHECK_WAIT_S:g} s"
        return EndpointCheck(True, f"{endpoint.url} did not answer a free request within {waited}")
    except Exception as exc:
        return _endpoint_failure(endpoint, model, exc)
    took = (anyio.current_time() - started) * 1000
    accepted = f"{endpoint.url} accepted {endpoint.credential_source()}"
    return EndpointCheck(False, f"{accepted} (a free request, count_tokens, answered in {took:.0f} ms)")


def _endpoint_failure(endpoint: Endpoint, model: str, exc: Exception) -> EndpointCheck:
    mapped = classify(exc)
    if isinstance(mapped, Refused):
        return EndpointCheck(True, endpoint.refused(mapped, model).message)
    if isinstance(mapped, Transient) and mapped.unconnected:
        hint = endpoint.connection_hint()
        return EndpointCheck(True, f"could not connect to {endpoint.url} ({mapped.unconnected}). {hint}")
    if isinstance(exc, anthropic.APIStatusError):  # reached, and the key was not refused
        return EndpointCheck(
            False,
            f"{endpoint.url} answered a free request (count_tokens) with {exc.status_code}: {exc.message}; "
            "the credentials were not refused",
        )
    return EndpointCheck(True, f"trying {endpoint.url} failed: {mapped}")


def _with_endpoint(check: BackendCheck, endpoint: EndpointCheck) -> BackendCheck:
    if check.name not in {API, BATCH}:
        return check
    detail = endpoint.detail
    if check.name == BATCH:
        outcome = "failed its check" if endpoint.failed else "passed its check"
        detail = f"the same endpoint and credentials as anthropic, which {outcome} (above)"
    return BackendCheck(check.name, check.usable and not endpoint.failed, detail, endpoint.failed)


async def _check_one(roster: Roster, name: str, reason: str | None) -> BackendCheck:
    backend = roster.get(name)
    if reason is not None:
        return BackendCheck(name, False, reason)
    if isinstance(backend, CommandBackend):
        where = shutil.which(backend.program) or backend.program
        version = await backend.version()
        if version is None:
            return BackendCheck(name, False, f"{where} is there but `{backend.program} --version` failed: "
                                "check that it runs in a terminal")  # fmt: skip
        # A preset's flags are known to be in its CLI's help; a command of the operator's own may not
        # even understand --help (run as a task, it might do work), so it is not asked.
        preset = PRESETS.get(name)
        unknown = await backend.unknown_flags() if preset and preset.program == backend.program else []
        if unknown:
            return BackendCheck(name, False, f"{version} ({where}) is too old: its --help does not list "
                                f"{', '.join(unknown)}, which fanout-mcp passes. Update it"
                                f"{f' ({backend.install_hint})' if backend.install_hint else ''}, or change "
                                f"the command's argv in the configuration file")  # fmt: skip
        checked = "" if unknown is not None else "; its --help could not be read, so its flags are unchecked"
        withheld = backend.withheld(_SETUP_PREFIXES.get(name, ())) if preset else []
        if withheld:
            checked += (
                f"; set here but not passed to it: {', '.join(withheld)} (name those it needs in "
                f"[commands.{name}] pass_env; a CLI set up through them, e.g. on Bedrock or Vertex, fails "
                "without them)"
            )
        return BackendCheck(name, True, f"{version} ({where}){checked}")
    endpoint = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    return BackendCheck(name, True, f"credentials found; endpoint {endpoint} (not called; `doctor --check` "
                        "tries them with a free request)")  # fmt: skip
