"""A scripted backend for testing the registry without any provider (as httpx's MockTransport is for
httpx): each call runs a handler the test supplies, which can block on anyio events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from server import Backend, Caller, SubagentRequest, SubagentResult, TaskSink
from server.backends import Traits

Handler = Callable[[SubagentRequest, TaskSink], Awaitable[SubagentResult]]


async def echo(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
    """Answer with the first line of the task's prompt section."""
    text = f"answer to: {request.prompt.split('Task:', 1)[-1].strip().splitlines()[0]}"
    sink.response_started()
    sink.append(text)
    return SubagentResult(text=text, model=request.model, stop_reason="end_turn")


class ScriptedBackend(Backend):
    """Runs ``handler`` for every task and records what it was asked and how many ran at once."""

    def __init__(
        self,
        handler: Handler = echo,
        *,
        caches_prompts: bool = False,
        name: str = "scripted",
        offers_tools: bool = False,
        traits: Traits | None = None,
    ) -> None:
        self.handler = handler
        self._name = name
        self._traits = traits or Traits(caches_prompts=caches_prompts, offers_tools=offers_tools)
        self.unavailable: str | None = None
        self.calls: list[SubagentRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0
        self._entered: list[tuple[int, anyio.Event]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def traits(self) -> Traits:
        return self._traits

    def unavailable_reason(self) -> str | None:
        return self.unavailable

    async def run(self, request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        self.calls.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for count, event in self._entered:
            if len(self.calls) >= count:
                event.set()
        try:
            return await self.handler(request, sink)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1

    async def wait_calls(self, count: int) -> None:
        """Return once ``count`` calls have started (bound it with ``fail_after``)."""
        if len(self.calls) >= count:
            return
        event = anyio.Event()
        self._entered.append((count, event))
        await event.wait()


def gated(gate: anyio.Event, text: str = "done") -> Handler:
    """A handler that begins answering, then waits for ``gate`` before it completes."""

    async def handler(request: SubagentRequest, sink: TaskSink) -> SubagentResult:
        sink.response_started()
        sink.append(text[:1])
        await gate.wait()
        sink.append(text[1:])
        return SubagentResult(text=text, model=request.model, stop_reason="end_turn")

    return handler


#: The principal the engine's tests spawn and read as (a plain one: not an operator).
ME = Caller("tester")
