"""Subagents on the Anthropic Messages API.

One ``AsyncAnthropic`` (made in the server's lifespan, on its event loop) serves every task. Answers
are streamed, so a running task's partial output is visible; the SDK sends each request, and the
answer's bytes are read in ``answer_stream.py`` (cheaper than the SDK's event objects). The SDK's own
retries are off
(``max_retries=0``): they use a fixed count and sleep for any ``retry-after`` without a cap. Instead a
transient fault (429, 529, 5xx, 408, 409, a dropped or refused connection, an ``overloaded_error``
mid-stream) is retried here with back-off for as long as the task's deadline allows, and 429/529 also
tell the shared ``Throttle`` to send fewer requests for a while. Provider exceptions become
``TaskFailure`` in ``faults.classify`` and nowhere else (the batch backend uses it too). What is
certain to fail is not retried: refused credentials, and an endpoint that never answered and cannot
be reached, are verdicts of the shared ``Endpoint`` (see ``endpoint.py``), which also lets one call at
a time make the first contact.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import anthropic
import anyio
import httpx2

from ..core.models import SubagentRequest, SubagentResult
from . import Backend, TaskSink, Traits
from .answer_stream import stream_answer
from .edit_workspace import EditWorkspace
from .endpoint import Endpoint, Refused
from .faults import Transient, backoff_delay, classify, give_up
from .message_params import message_params
from .throttle import Headroom, Throttle
from .tooluse import (
    MAX_TURNS,
    LoopSink,
    Reply,
    describe,
    run_uses,
    tool_params,
)
from .workspace import Workspace

NAME: Final = "anthropic"
_PROBE_WAIT_S: Final = 10.0  #: a check of the endpoint that takes longer is not waited for
_T = TypeVar("_T")


class AnthropicBackend(Backend):
    """Runs subagents through one shared ``AsyncAnthropic`` client."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        throttle: Throttle,
        *,
        retry_cap_s: float,
        backoff_base_s: float = 0.5,
        workspace: Workspace | None = None,
        endpoint: Endpoint | None = None,
    ) -> None:
        self._client = client
        self._endpoint = endpoint or Endpoint(client)
        self._workspace = workspace
        self._throttle = throttle
        self._retry_cap_s = retry_cap_s
        self._backoff_base_s = backoff_base_s
        # No bound of its own: the throttle bounds requests in flight, adapting to the provider.
        self._traits = Traits(caches_prompts=True, offers_tools=workspace is not None, edits=True)

    @property
    def name(self) -> str:
        return NAME

    @property
    def traits(self) -> Traits:
        return self._traits

    @property
    def throttle(self) -> Throttle:
        return self._throttle

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    def unavailable_reason(self) -> str | None:
        return credentials_problem(self._client) or self._endpoint.refusal()

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        if request.edit and request.cwd is not None:  # an edit task: the tools of its own worktree
            return await self._converse(request, sink, EditWorkspace(request.cwd))
        if not request.tools or self._workspace is None:
            return (await self._call(message_params(request), request.model, sink)).result
        return await self._converse(request, sink, self._workspace)

    async def _converse(
        self, request: SubagentRequest, sink: TaskSink, workspace: Workspace
    ) -> SubagentResult:
        """The tool loop: turns until an answer asks for no tool (the last turn may not ask)."""
        history: list[dict[str, Any]] = []
        history_chars = 0
        loop_sink = LoopSink(sink)
        for turn in range(1, MAX_TURNS + 1):
            tools = tool_params(turn, history_chars, workspace.tools)
            reply = await self._call(message_params(request, history) | tools, request.model, loop_sink)
            if not reply.uses or "tool_choice" in tools:
                return reply.result
            for use in reply.uses:
                loop_sink.append(describe(use))
            loop_sink.keep()
            answers = await run_uses(workspace, reply.uses, history_chars)
            history += [reply.assistant_turn(), answers]
            history_chars += len(json.dumps(answers))
        raise AssertionError("unreachable: the last turn allows no tool use")

    async def _call(self, params: dict[str, Any], model: str, sink: TaskSink) -> Reply:
        """One Messages call with ``params``, retried on transient faults for as long as the deadline
        allows, unless a verdict of the endpoint says that no try can work."""
        if not self._endpoint.answered:
            async with self._endpoint.first_contact(model, sink) as mine:
                if mine:
                    await self._tries(lambda: self._probe(model), model, sink)
        return await self._tries(lambda: self._attempt(params, model, sink), model, sink)

    async def _tries(self, attempt: Callable[[], Awaitable[_T]], model: str, sink: TaskSink) -> _T:
        tries = 0
        started = anyio.current_time()
        while True:
            tries += 1
            self._endpoint.check(model)  # a verdict given while this call waited between tries
            try:
                async with self._throttle.slot():
                    result = await attempt()
            except Transient as fault:
                verdict = self._endpoint.unreachable(fault.unconnected) if fault.unconnected else None
                if verdict is not None:
                    raise verdict from None
                # Until an endpoint that never answered is given up, the next try lands at the latest
                # then, so that the verdict is given on time.
                backoff = backoff_delay(fault, tries, self._backoff_base_s, self._retry_cap_s)
                delay = min(backoff, self._endpoint.grace_left())
                if fault.pushback:
                    self._throttle.pushback(delay)
                if anyio.current_time() + delay >= anyio.current_effective_deadline():
                    raise give_up(fault, tries, anyio.current_time() - started) from None
                sink.restart(self._retry_note(fault, delay, tries + 1), fault.kind)
                await self._endpoint.pause(delay, model)
            except Refused as refusal:
                raise self._endpoint.refused(refusal, model) from None
            else:
                self._throttle.success()
                return result

    async def _probe(self, model: str) -> None:
        """One try of the endpoint's check. It fails only on what the endpoint's verdicts are about
        (refused credentials, no connection); any other answer shows the endpoint there, and what it
        makes of a task's request, the request itself will tell."""
        try:
            # An endpoint that took the connection but does not answer this is there too: a gateway
            # may not serve count_tokens at all.
            with anyio.move_on_after(_PROBE_WAIT_S):
                await self._endpoint.probe(model)
        except Exception as exc:
            mapped = classify(exc)
            refused = isinstance(mapped, Refused) and mapped.status == 401
            connected = isinstance(mapped, Transient) and mapped.unconnected is None
            if refused or not (connected or isinstance(exc, anthropic.APIStatusError)):
                if mapped is exc:
                    raise
                raise mapped from exc
        self._endpoint.reached()

    def _retry_note(self, fault: Transient, delay: float, attempt: int) -> str:
        note = f"{fault.what}; retrying in {delay:.1f} s (attempt {attempt})"
        left = self._endpoint.grace_left()
        if fault.unconnected and math.isfinite(left):
            note += f"; {self._endpoint.url} has not answered yet, and is given up in {left:.0f} s"
        return note

    async def _attempt(self, params: dict[str, Any], model: str, sink: TaskSink) -> Reply:
        try:
            return await stream_answer(self._client, params, model, sink, self._answered)
        except Transient:
            raise
        except Exception as exc:
            mapped = classify(exc)
            if mapped is exc:
                raise
            if isinstance(exc, anthropic.APIStatusError) and not isinstance(mapped, Refused):
                self._endpoint.reached()
                headroom = Headroom.of(exc.response.headers, datetime.datetime.now(datetime.UTC))
                self._throttle.observe(headroom, refused=isinstance(mapped, Transient) and mapped.pushback)
            raise mapped from exc

    def _answered(self, headers: httpx2.Headers) -> None:
        """An answer arrived: the endpoint is there, and its headers say what is left of the rate limit."""
        self._endpoint.reached()
        self._throttle.observe(Headroom.of(headers, datetime.datetime.now(datetime.UTC)))


def credentials_problem(client: anthropic.AsyncAnthropic) -> str | None:
    """Why ``client`` has no usable credentials (for the calling model), or None if it has some."""
    key = client.api_key or client.auth_token
    if key and key.startswith("${") and key.endswith("}"):
        return (
            f"the API key is the literal text {key!r}: this MCP client does not expand variables in its "
            'config. Put the key itself in the "env" block of the server\'s entry and restart it.'
        )
    if key and ("..." in key or "\u2026" in key):  # no key has an ellipsis: an example's placeholder does
        variable = "ANTHROPIC_API_KEY" if client.api_key else "ANTHROPIC_AUTH_TOKEN"
        return (
            f"{variable} holds a placeholder (it contains '...', as the examples' sk-ant-... does), not a "
            "key. Put the key itself in the server's environment and restart the server."
        )
    if key or client.credentials is not None:
        return None
    return (
        "no Anthropic API credentials: the server's environment has no ANTHROPIC_API_KEY (or "
        'ANTHROPIC_AUTH_TOKEN). Set it in the MCP server\'s configuration (the "env" block of the '
        "client's config, see the fanout-mcp README) and restart the server."
    )
