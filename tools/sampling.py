"""The ``sampling`` backend: subagents answered by the MCP client's own model (``sampling/createMessage``).

It belongs to the MCP layer because it speaks MCP, and it exists per spawn: each one is bound to the
session of the ``spawn_parallel`` call that made it, so a task only ever asks the client that started
it. Sampling needs a channel from the server to the client outside a request, which 2025-11-25
sessions have and 2026-07-28 sessions do not (sampling is deprecated there), and a client that declares
the capability; anywhere else the backend is unavailable, with a message that says what to use instead.

The client runs the model and pays for it; it reports no tokens, so a sampling task's usage is zero
tokens at an unknown (null) cost.
"""

from __future__ import annotations

import warnings
from typing import Final
from weakref import WeakKeyDictionary

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError, NoBackChannelError

from ..server import (
    Backend,
    ErrorKind,
    SubagentRequest,
    SubagentResult,
    TaskFailure,
    TaskSink,
    Tokens,
)
from ..server.backends import Traits

NAME: Final = "sampling"
# Requests one client is asked to answer at once: a client runs them on its user's model and quota.
MAX_AT_ONCE: Final = 4
# One traits record per client connection, so one bound however many spawns it makes (backends that
# share a record share its bound); gone with the connection.
_TRAITS: WeakKeyDictionary[object, Traits] = WeakKeyDictionary()
_INSTEAD: Final = (
    "Use backend 'anthropic' (an API key on the server) or 'claude' (the Claude Code CLI) instead."
)


class SamplingBackend(Backend):
    """Asks the model of the client behind one MCP session."""

    def __init__(self, session: ServerSession, protocol_version: str | None) -> None:
        self._session = session
        self._protocol = protocol_version or "unknown"
        # A ServerSession is made per request; the connection behind it is the client. The SDK keeps it
        # private: without it (another SDK version), the bound falls back to one per spawn.
        client: object = getattr(session, "_connection", session)
        traits = _TRAITS.get(client)
        if traits is None:
            traits = _TRAITS[client] = Traits(max_concurrency=MAX_AT_ONCE)
        self._traits = traits

    @classmethod
    def of(cls, ctx: Context) -> SamplingBackend:
        """The backend for the client that made the call ``ctx`` belongs to."""
        return cls(ctx.session, ctx.protocol_version)

    @property
    def name(self) -> str:
        return NAME

    @property
    def traits(self) -> Traits:
        return self._traits

    def model_for(self, asked: str | None, server_default: str) -> str:
        return asked or ""  # the client picks its model; a named one goes to it as a hint

    def unavailable_reason(self) -> str | None:
        capabilities = self._session.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            return f"this MCP client does not offer sampling (it declared no sampling capability). {_INSTEAD}"
        if not self._session.can_send_request:
            return (
                f"this MCP session (protocol {self._protocol}) has no channel for the server to ask the "
                f"client's model: sampling needs a 2025-11-25 session and is deprecated since 2026-07-28. "
                f"{_INSTEAD}"
            )
        return None

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        try:
            result = await self._ask(request)
        except NoBackChannelError as exc:
            raise TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, f"{exc}. {_INSTEAD}") from None
        except MCPError as exc:
            raise TaskFailure(
                ErrorKind.API_ERROR, f"the client refused or failed the sampling request: {exc}"
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            raise TaskFailure(
                ErrorKind.BACKEND_UNAVAILABLE,
                "the MCP client that spawned this task disconnected before its model answered. "
                "Spawn the task again.",
            ) from None
        sink.response_started()
        sink.add_usage(result.model, Tokens())  # the client reports no tokens: the cost is unknown, not $0
        content = result.content
        if not isinstance(content, types.TextContent):
            raise TaskFailure(
                ErrorKind.API_ERROR,
                f"the client's model answered with {content.type} content, not text. {_INSTEAD}",
            )
        sink.append(content.text)
        return SubagentResult(text=content.text, model=result.model, stop_reason=result.stop_reason)

    async def _ask(self, request: SubagentRequest) -> types.CreateMessageResult:
        messages = [_message("user", request.prompt)]
        if request.follow_up is not None:
            previous, feedback = request.follow_up
            messages += [_message("assistant", previous), _message("user", feedback)]
        hints = [types.ModelHint(name=request.model)] if request.model else None
        with warnings.catch_warnings():  # deprecated in 2026-07-28, and used only where it still works
            warnings.simplefilter("ignore")
            return await self._session.create_message(  # pyright: ignore[reportDeprecated]
                messages,
                max_tokens=request.max_tokens,
                system_prompt=request.system or None,
                model_preferences=types.ModelPreferences(hints=hints) if hints else None,
            )


def _message(role: types.Role, text: str) -> types.SamplingMessage:
    return types.SamplingMessage(role=role, content=types.TextContent(type="text", text=text))
