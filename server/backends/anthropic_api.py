"""Subagents on the Anthropic Messages API.

One ``AsyncAnthropic`` (made in the server's lifespan, on its event loop) serves every task. Answers
are streamed, so a running task's partial output is visible. The SDK's own retries are off
(``max_retries=0``): they use a fixed count and sleep for any ``retry-after`` without a cap. Instead a
transient fault (429, 529, 5xx, 408, 409, a dropped or refused connection, an ``overloaded_error``
mid-stream) is retried here with back-off for as long as the task's deadline allows, and 429/529 also
tell the shared ``Throttle`` to send fewer requests for a while. Provider exceptions become
``TaskFailure`` in ``classify`` and nowhere else (the batch backend uses it too). What is certain to fail
is not retried: refused credentials, and an endpoint that never answered and cannot be reached, are
verdicts of the shared ``Endpoint`` (see ``endpoint.py``), which also lets one call at a time make the
first contact.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar, cast

import anthropic
import anyio
import httpx2

from ..core.errors import TaskFailure
from ..core.models import SubagentRequest, SubagentResult, Tokens
from ..core.state import ErrorKind
from . import Backend, TaskSink, Traits
from .endpoint import Endpoint, Refused
from .throttle import Headroom, Throttle
from .tooluse import (
    MAX_TURNS,
    LoopSink,
    Reply,
    ToolBlocks,
    describe,
    run_uses,
    tool_params,
)
from .workspace import Workspace

logger = logging.getLogger(__name__)

NAME: Final = "anthropic"
_PROBE_WAIT_S: Final = 10.0  #: a check of the endpoint that takes longer is not waited for
_T = TypeVar("_T")
_RETRYABLE_STATUS: Final = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class Transient(Exception):
    """A fault worth retrying. ``pushback`` marks the provider asking for less load (429/529);
    ``unconnected`` says why a try never reached the endpoint (refused, a name that does not resolve, a
    proxy that would not connect), or is None when it did."""

    def __init__(
        self, what: str, retry_after: float | None, *, pushback: bool, unconnected: str | None = None
    ) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after
        self.pushback = pushback
        self.unconnected = unconnected

    @property
    def kind(self) -> ErrorKind:
        """What the task fails as if its time runs out on this fault."""
        return ErrorKind.RATE_LIMITED if self.pushback else ErrorKind.API_ERROR


def backoff_delay(fault: Transient, attempt: int, base_s: float, cap_s: float) -> float:
    """How long to wait before try ``attempt + 1``: the provider's retry-after if it gave one, else
    exponential back-off from ``base_s`` with jitter; never more than ``cap_s``."""
    if fault.retry_after is not None and fault.retry_after > 0:
        return min(fault.retry_after, cap_s)
    backoff = base_s * 2 ** min(attempt - 1, 16)
    return min(backoff, cap_s) * random.uniform(0.75, 1.0)  # jitter, not crypto


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
        self._traits = Traits(caches_prompts=True, offers_tools=workspace is not None)

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
            tools = tool_params(turn, history_chars)
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
                    raise _give_up(fault, tries, anyio.current_time() - started) from None
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
        chunks: list[str] = []
        usage = _UsageReading()
        tools = ToolBlocks()
        stop_reason, ended = None, False
        try:
            stream = await self._client.messages.create(**params, stream=True)
            self._endpoint.reached()
            self._throttle.observe(Headroom.of(stream.response.headers, datetime.datetime.now(datetime.UTC)))
            try:
                async for event in stream:
                    if event.type == "content_block_delta":
                        if event.delta.type == "text_delta":
                            chunks.append(event.delta.text)
                            sink.append(event.delta.text)
                        elif event.delta.type == "input_json_delta":
                            tools.delta(event.index, event.delta.partial_json)
                    elif event.type == "content_block_start":
                        tools.start(event.index, event.content_block)
                    elif event.type == "message_start":
                        model = event.message.model
                        usage.start(event.message.usage)
                        sink.response_started()
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason
                        usage.delta(event.usage)
                    elif event.type == "message_stop":
                        ended = True
            finally:
                with anyio.move_on_after(2, shield=True):
                    await stream.close()
            if not ended:  # the stream closed cleanly but early (a proxy cut it): never pass that off as done
                raise Transient("the answer stream ended before the answer did", None, pushback=False)
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
        finally:
            if usage.seen:
                sink.add_usage(model, usage.tokens())
        result = SubagentResult(text="".join(chunks), model=model, stop_reason=stop_reason)
        return Reply(result, tools.uses() if stop_reason == "tool_use" else [])


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


def message_params(request: SubagentRequest, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Messages API parameters of one subagent call, without ``stream`` (a batch request carries
    the same ones); ``history`` holds the tool turns so far."""
    return {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "system": [_system_block(request)],
        "messages": _messages(request, history or []),
        **_output_config(request),
    }


def _messages(request: SubagentRequest, history: list[dict[str, Any]]) -> Any:
    messages: list[dict[str, Any]] = [{"role": "user", "content": request.prompt}]
    if request.follow_up is not None:
        answer, feedback = request.follow_up
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": feedback}]
    return messages + _cached_history(history)


def _cached_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool turns, with a cache breakpoint after the newest tool answer: the next turn reads the
    conversation so far from the prompt cache instead of paying for all of it again. Copies: the
    stored history keeps no breakpoint, so a call never carries more than one of them."""
    if not history or not isinstance(history[-1].get("content"), list):
        return history
    last = history[-1]
    blocks: list[dict[str, Any]] = list(last["content"])
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return [*history[:-1], {**last, "content": blocks}]


def _output_config(request: SubagentRequest) -> dict[str, Any]:
    """Schema-constrained decoding, with the schema narrowed to what the API accepts (the full schema
    is still checked on our side). A schema the narrowing would make stricter than the caller's (maps:
    ``additionalProperties`` or ``patternProperties`` with a schema) is only asked for in the prompt."""
    if request.output_schema is None or _has_open_maps(request.output_schema):
        return {}
    try:
        schema = anthropic.transform_schema(_type_lists_as_any_of(request.output_schema))
    except Exception:  # a feature the SDK cannot narrow: ask in the prompt only; the answer is still checked
        logger.debug("schema not sent for constrained decoding", exc_info=True)
        return {}
    return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}


def _has_open_maps(node: Any) -> bool:
    if isinstance(node, dict):
        fields = cast(dict[str, Any], node)
        extra = fields.get("additionalProperties")
        if "patternProperties" in fields or extra is True or isinstance(extra, dict):
            return True
        return any(_has_open_maps(value) for value in fields.values())
    if isinstance(node, list):
        return any(_has_open_maps(item) for item in cast(list[Any], node))
    return False


def _type_lists_as_any_of(node: Any) -> Any:
    """``{"type": ["string", "null"], ...}`` as ``anyOf`` of single types, which the SDK can narrow."""
    if isinstance(node, list):
        return [_type_lists_as_any_of(item) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    fields = {key: _type_lists_as_any_of(value) for key, value in cast(dict[str, Any], node).items()}
    kinds = fields.get("type")
    if isinstance(kinds, list):
        rest = {key: value for key, value in fields.items() if key != "type"}
        return {"anyOf": [{**rest, "type": kind} for kind in cast(list[Any], kinds)]}
    return fields


def _system_block(request: SubagentRequest) -> Any:
    block: dict[str, Any] = {"type": "text", "text": request.system}
    if request.cache_system:
        block["cache_control"] = {"type": "ephemeral"}
    return block


def tokens_of(usage: Any) -> Tokens:
    """A provider ``Usage`` (of a message, or of a message's start) as ``Tokens``."""
    return Tokens(
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        usage.cache_creation_input_tokens or 0,
        usage.cache_read_input_tokens or 0,
    )


class _UsageReading:
    """Usage from ``message_start`` and the cumulative counts in ``message_delta``."""

    __slots__ = ("cache_read", "cache_write", "input", "output", "seen")

    def __init__(self) -> None:
        self.seen = False
        self.input = self.output = self.cache_write = self.cache_read = 0

    def start(self, usage: Any) -> None:
        self.seen = True
        tokens = tokens_of(usage)
        self.input, self.output = tokens.input_tokens, tokens.output_tokens
        self.cache_write, self.cache_read = tokens.cache_write_tokens, tokens.cache_read_tokens

    def delta(self, usage: Any) -> None:
        self.seen = True
        self.output = usage.output_tokens or self.output
        if usage.input_tokens is not None:
            self.input = usage.input_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_write = usage.cache_creation_input_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens

    def tokens(self) -> Tokens:
        return Tokens(self.input, self.output, self.cache_write, self.cache_read)


def classify(exc: Exception) -> Exception:
    """Translate a provider exception into ``Transient`` (retry) or ``TaskFailure`` (give up)."""
    if isinstance(exc, anthropic.APIStatusError):
        return _classify_status(exc)
    if _unconnected(exc):
        why = _cause(exc, detailed=True)
        what = f"could not connect to the Messages API ({why})"
        return Transient(what, None, pushback=False, unconnected=why)
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return Transient("the Messages API did not answer in time", None, pushback=False)
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return Transient(f"connection to the Messages API failed ({_cause(exc)})", None, pushback=False)
    if isinstance(exc, anthropic.CredentialsError):
        return TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, f"the Anthropic credentials cannot be used: {exc}")
    if isinstance(exc, anthropic.APIResponseValidationError | httpx2.StreamError | ValueError):
        # A garbled answer (bad JSON in an event, a stream read twice): a fresh attempt may well work.
        return Transient(f"the answer could not be read ({type(exc).__name__})", None, pushback=False)
    if isinstance(exc, anthropic.AnthropicError):
        return TaskFailure(ErrorKind.API_ERROR, f"the Anthropic SDK failed: {exc}")
    return exc


# The status an `error` event inside a streamed (HTTP 200) answer stands for, by its error type.
_STREAM_ERROR_STATUS: Final = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _classify_status(exc: anthropic.APIStatusError) -> Exception:
    status, headers = exc.status_code, exc.response.headers
    detail = exc.api_message or exc.message
    if status == 200:  # an `error` event inside a streamed answer: classify it by its error type
        status = _STREAM_ERROR_STATUS.get(str(exc.type), 500)
        if status in _RETRYABLE_STATUS:
            label = f"the answer stream broke off ({exc.type})"
            return Transient(label, None, pushback=status in {429, 529})
    should_retry = headers.get("x-should-retry")
    retryable = status in _RETRYABLE_STATUS and not _is_spend_limit(exc)
    if should_retry == "true" or (retryable and should_retry != "false"):
        label = {429: "rate limited (429)", 529: "overloaded (529)"}.get(status, f"HTTP {status}")
        return Transient(label, _retry_after(headers), pushback=status in {429, 529})
    request_id = f" (request id {exc.request_id})" if exc.request_id else ""
    if status in {401, 403}:
        request = f"; request id {exc.request_id}" if exc.request_id else ""
        return Refused(status, f"{status} {exc.type or 'error'}: {detail}{request}")
    if _is_spend_limit(exc) or status == 402:
        return TaskFailure(
            ErrorKind.BACKEND_UNAVAILABLE, f"the account cannot be billed ({status}: {detail}){request_id}."
        )
    if status == 404:
        return TaskFailure(
            ErrorKind.INVALID_INPUT,
            f"the Messages API answered 404: {detail}{request_id}. Most often the model id is wrong; "
            "use one such as claude-sonnet-5-5, or leave model unset for the server's default.",
        )
    if status in {400, 413, 422}:
        return TaskFailure(
            ErrorKind.INVALID_INPUT,
            f"the Messages API rejected the request ({status}: {detail}){request_id}. Change the task "
            "(a shorter prompt, fewer files, another max_tokens or model) and spawn it again.",
        )
    return TaskFailure(ErrorKind.API_ERROR, f"the Messages API answered {status}: {detail}{request_id}")


def _is_spend_limit(exc: anthropic.APIStatusError) -> bool:
    return bool(exc.error_code and "spend_limit" in str(exc.error_code))


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms`` first, then ``retry-after``."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        seconds = _number(raw_ms)
        if seconds is not None:
            return seconds / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _cause(exc: Exception, *, detailed: bool = False) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    name = type(cause).__name__
    return f"{name}: {cause}" if detailed and str(cause) else name


def _unconnected(exc: Exception) -> bool:
    """Whether the try never reached the endpoint: no connection was made (refused, a name that does not
    resolve, a connect timeout, a proxy that would not connect), so nothing was sent or billed."""
    cause = exc if isinstance(exc, httpx2.TransportError) else exc.__cause__ or exc.__context__
    return isinstance(cause, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.ProxyError)


def _give_up(fault: Transient, attempts: int, elapsed: float) -> TaskFailure:
    advice = (
        "Its siblings kept their results. Spawn this task again later, or with a lower max_concurrency."
        if fault.pushback
        else "Spawn this task again later; if it keeps failing, check the provider's status."
    )
    return TaskFailure(
        fault.kind,
        f"gave up after {attempts} attempts over {elapsed:.0f} s: {fault.what}; the task's timeout leaves "
        f"no time for another try. {advice}",
    )
