"""What a tool result holds, and how big it may be.

Claude Code hands the calling model a result's structured content (as compact JSON) and not its text,
so the structured content is the answer: every fact a model needs is there, ``next`` (what to call
next, and why) included, and for an error the same message and guidance as the text.

The text is a readable rendering for people and for clients that read only text. Which text a session
gets follows from its protocol version: structured content came with 2025-06-18, so a client that
negotiated an older version (2024-11-05, 2025-03-26) reads only the text, and its text carries every
output in full. Every other client gets a compact text that does not repeat the outputs a second time.
A client declares no capability for structured output, so the version is all there is to go by.

Size: Claude Code saves a result of more than 50,000 characters to a file and shows the model a
preview, unless the tool declares a larger ``anthropic/maxResultSizeChars`` in its ``_meta``. A result
is measured as sent, text and structured content together (``serialized_chars``), and ``largest_page``
shrinks the outputs' fair shares until it fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Final

import mcp_types as types
import pydantic_core
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from ..server import BackendUnavailable, FanoutError, LimitReached, RegistryClosed, UnknownTask
from ..server import ErrorKind as TaskErrorKind
from .result_models import CallError, ErrorKind, ErrorResult

STRUCTURED_SINCE: Final = "2025-06-18"  # the first protocol version with structured tool output
LARGE_RESULT_CHARS: Final = 200_000  # the most one result holds when a larger page is asked for
RESULT_SIZE_META: Final = "anthropic/maxResultSizeChars"
_WORST_ESCAPE: Final = 6  # one character of text is at most six in JSON (a control character: \u0001)


class Refusal(ToolError):
    """A call that did nothing (or failed), with what went wrong and what to do instead."""

    def __init__(self, kind: ErrorKind, message: str, next_call: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.next = next_call


def call_again(tool: str, what: str = "the arguments") -> str:
    """The next call after a refusal: the same tool, ``what`` corrected."""
    return f"{tool} again with {what} corrected; nothing was done."


@contextmanager
def as_tool_errors(tool: str) -> Generator[None, None, None]:
    """The engine's errors as refusals of ``tool``: the kind a caller branches on, and what to do."""
    try:
        yield
    except UnknownTask as exc:
        raise Refusal("not_found", str(exc), "list_tasks to see the ids this server still knows.") from None
    except LimitReached as exc:
        raise Refusal("limit_reached", str(exc), "What the message says; nothing was started.") from None
    except (
        BackendUnavailable
    ) as exc:  # the kind first, as a task's error carries it, for a caller to branch on
        raise Refusal(
            "backend_unavailable",
            f"{TaskErrorKind.BACKEND_UNAVAILABLE.value}: {exc}",
            f"{tool} again naming another backend, or after the server is configured as the message says.",
        ) from None
    except RegistryClosed as exc:
        raise Refusal("shutting_down", str(exc), "Nothing here: the server is stopping.") from None
    except FanoutError as exc:
        raise Refusal("invalid_input", str(exc), call_again(tool)) from None


def reads_text_only(ctx: Context) -> bool:
    """Whether this session's client predates structured content, and so reads only the text."""
    version = ctx.protocol_version
    return version is not None and version < STRUCTURED_SINCE  # ISO dates order as strings


def result(model: BaseModel, text: str, size_limit: int | None = None) -> types.CallToolResult:
    """A result whose structured content is ``model`` and whose text is ``text``; ``size_limit``, for a
    result that may pass what a client shows whole, says how big it may be."""
    meta = {RESULT_SIZE_META: size_limit} if size_limit is not None else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
        _meta=meta,
    )


def error_result(refusal: Refusal) -> types.CallToolResult:
    """An ``isError`` result: the message and what to do, in the text and in the structured content
    (which fits every tool's output schema: see ``lean.with_error``)."""
    answer = ErrorResult(error=CallError(kind=refusal.kind, message=refusal.message), next=refusal.next)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{refusal.message}\nNext: {refusal.next}")],
        structured_content=answer.model_dump(mode="json"),
        is_error=True,
    )


def serialized_chars(answer: types.CallToolResult) -> int:
    """The characters a client holds of ``answer``: its text, and its structured content as JSON (as
    Claude Code measures it: compact, non-ASCII kept)."""
    text = sum(len(block.text) for block in answer.content if isinstance(block, types.TextContent))
    # pydantic-core's serializer: the same compact JSON as json.dumps(ensure_ascii=False), a few times faster
    structured = pydantic_core.to_json(answer.structured_content).decode()
    return text + len(structured)


def largest_page(
    build: Callable[[int], types.CallToolResult], wanted: int, limit: int, copies: int
) -> types.CallToolResult:
    """The result ``build(budget)`` with the largest budget of output characters that keeps it within
    ``limit`` characters as sent (or with none, if even that does not fit).

    ``build`` shares the budget among the outputs (``fair_shares``), so that below ``wanted`` (all of
    them) a character less of budget is a character less of output, sent ``copies`` times (twice when
    the text repeats the outputs), or more where JSON escapes it. Each round lowers the budget by what
    the result was over, so most fit at the first or second; a result over by more than its outputs
    could ever weigh is left as it is, since no page of them would fit.
    """
    budget = min(wanted, limit // copies)
    while True:
        answer = build(budget)
        over = serialized_chars(answer) - limit
        if over <= 0 or budget == 0 or over > budget * copies * _WORST_ESCAPE:
            return answer
        budget = max(0, budget - math.ceil(over / copies))
