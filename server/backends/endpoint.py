"""What this server has learnt about its Messages API endpoint, shared by every task that calls it.

The API backend and the batch backend reach one endpoint (``ANTHROPIC_BASE_URL``, else the provider's)
with one set of credentials, both read from the environment when the server starts. Two verdicts are
certain enough to stop retrying:

* **Refused credentials.** A 401 means the key is wrong, and the key cannot change without a restart
  (it is read from the environment at start): the verdict stands for the process, so every later task on
  the endpoint fails without a request and a later spawn is refused at the call. A 403 refuses the key
  the use of one model: that verdict stands for that model, for the same reason.
* **An endpoint that cannot be reached.** Connections refused, names that do not resolve, a proxy that
  will not connect, for ``grace_s`` since the first such failure, while the endpoint has not answered
  once since the server started: a wrong URL or no network, not a blip (``settings.CONNECT_GRACE_S``
  says why 30 s by default). One verdict on one clock fails every task waiting on it. The next task to
  come tries once more and fails at once if it cannot connect either, so a later spawn costs one try, not
  a grace; any answer clears the verdict. An endpoint that has answered once is a provider that may drop
  for a while: its connection failures are retried for each task's lifetime, as any transient fault.

Until the endpoint has answered once, one call at a time checks it with a free request (``probe``:
``count_tokens``, retried like any call) while the others wait for what it learns: a bad key costs one
request that carries no task's text, not one request per task, and a refused endpoint is tried by one
call on one clock, not raced by N. The check costs one round trip, once per server.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Final

import anthropic
import anyio

from ..config.settings import CONNECT_GRACE_S
from ..core.errors import TaskFailure
from ..core.state import ErrorKind
from . import TaskSink

_PROXY_VARIABLES: Final = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class Refused(TaskFailure):
    """The endpoint refused the credentials (401), or their use of a model (403).

    ``Endpoint.refused`` turns it into the verdict, which names the variable to fix.
    """

    def __init__(self, status: int, detail: str) -> None:
        message = f"the Messages API refused the credentials ({detail})"
        super().__init__(ErrorKind.BACKEND_UNAVAILABLE, message)
        self.status = status
        self.detail = detail  #: status, error type, message and request id, as the provider gave them


class Endpoint:
    """The verdicts about one client's endpoint and credentials, and the first contact with it."""

    def __init__(self, client: anthropic.AsyncAnthropic, *, grace_s: float = CONNECT_GRACE_S) -> None:
        self._client = client
        self._grace_s = grace_s
        self._answered = False  #: some request got an HTTP answer since the server started
        self._probing = False  #: a call is making the first contact
        self._failing_since: float | None = None  #: first connection failure, while never answered
        self._refused: str | None = None  #: 401: the credentials are wrong
        self._forbidden: dict[str, str] = {}  #: 403, by model
        self._unreachable: str | None = None
        self._verdicts = 0  #: times the unreachable verdict was given: a waiter compares
        self._changed = anyio.Event()  #: set (and replaced) when any of the above changes

    @property
    def url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    @property
    def answered(self) -> bool:
        """Whether the endpoint has answered once since the server started."""
        return self._answered

    def refusal(self) -> str | None:
        """Why no task can run on this endpoint (the key was refused), or None."""
        return self._refused

    def check(self, model: str | None) -> None:
        """Raise the verdict that stands against a request for ``model``, if one does."""
        if self._refused is not None:
            raise TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, self._refused)
        forbidden = self._forbidden.get(model) if model is not None else None
        if forbidden is not None:
            raise TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, forbidden)

    @asynccontextmanager
    async def first_contact(self, model: str, sink: TaskSink) -> AsyncGenerator[bool, None]:
        """Until the endpoint has answered once, one call at a time checks it (``probe``, retried), and the
        others wait here for what it learns: an answer lets them all go, a verdict fails them without a
        request. Yields True to the call that must check it now, False once it has answered.

        Raises:
            TaskFailure: a verdict stands against this call, or was given while it waited.
        """
        self.check(model)
        seen = self._verdicts
        if self._probing and not self._answered:
            sink.status(f"waiting for the first answer of {self.url}: another task is checking it")
        while self._probing and not self._answered:
            await self._changed.wait()
            self._check_since(model, seen)
        mine = not self._answered
        if mine:
            self._probing = True
        try:
            yield mine
        finally:
            if mine:
                self._probing = False
                self._notify()

    async def probe(self, model: str) -> int:
        """One free request (``count_tokens``, which generates nothing) to the endpoint with the
        credentials; the tokens it counted. Raises what the SDK raises."""
        counted = await self._client.messages.count_tokens(
            model=model, messages=[{"role": "user", "content": "ping"}]
        )
        return counted.input_tokens

    async def pause(self, seconds: float, model: str) -> None:
        """Wait ``seconds`` before the next try, unless a verdict against ``model`` comes first.

        Raises:
            TaskFailure: that verdict.
        """
        seen = self._verdicts
        with anyio.move_on_after(seconds):
            while True:
                await self._changed.wait()
                self._check_since(model, seen)

    def _check_since(self, model: str, seen: int) -> None:
        """``check``, and raise the unreachable verdict if it was given since the count was ``seen``."""
        self.check(model)
        if self._verdicts != seen and self._unreachable is not None:
            raise TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, self._unreachable)

    def reached(self) -> None:
        """An HTTP answer arrived: the endpoint is reachable, and the unreachable verdict is void."""
        self._failing_since = self._unreachable = None
        if not self._answered:
            self._answered = True
            self._notify()

    def refused(self, refusal: Refused, model: str | None) -> TaskFailure:
        """Record a refusal (a 401 for every request, a 403 for ``model``'s); the failure to raise."""
        self.reached()
        if refusal.status == 401 or model is None:
            message = self._refused_message(refusal)
            if refusal.status == 401:
                self._refused = message
        else:
            message = self._forbidden_message(refusal, model)
            self._forbidden[model] = message
        self._notify()
        return TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, message)

    def unreachable(self, what: str) -> TaskFailure | None:
        """A try could not connect (``what`` is the connection error). The verdict if the endpoint has never
        answered and has failed to connect for the whole grace (or was given up already); else None: retry,
        within ``grace_left``."""
        if self._answered:
            return None
        now = anyio.current_time()
        if self._failing_since is None:
            self._failing_since = now
        if self._unreachable is None and now - self._failing_since < self._grace_s:
            return None
        self._unreachable = self._unreachable_message(what, now - self._failing_since)
        self._verdicts += 1
        self._notify()
        return TaskFailure(ErrorKind.BACKEND_UNAVAILABLE, self._unreachable)

    def grace_left(self) -> float:
        """Seconds until connection failures become a verdict (infinite once the endpoint has answered)."""
        if self._answered or self._failing_since is None:
            return math.inf
        return max(0.0, self._failing_since + self._grace_s - anyio.current_time())

    def credential_source(self) -> str:
        """The variable the client's credentials came from."""
        if self._client.api_key:
            return "ANTHROPIC_API_KEY"
        if self._client.auth_token:
            return "ANTHROPIC_AUTH_TOKEN"
        return "the credentials profile (ANTHROPIC_PROFILE, or the profile under ~/.config/anthropic)"

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    # --- what the verdicts say ---------------------------------------------------------------------

    def _refused_message(self, refusal: Refused) -> str:
        return (
            f"the Messages API at {self.url} refused the credentials ({refusal.detail}). Fix "
            f"{self.credential_source()} in the server's environment{self._base_url_hint()}, then restart "
            "the server: it reads them once, at start, so until then every task on this endpoint fails "
            "like this without sending a request."
        )

    def _forbidden_message(self, refusal: Refused, model: str) -> str:
        return (
            f"the Messages API at {self.url} refused the credentials the use of model {model} "
            f"({refusal.detail}). Give the task another model, or fix {self.credential_source()} in the "
            f"server's environment{self._base_url_hint()} and restart the server: until then every task "
            f"of this server on {model} fails like this without sending a request."
        )

    def connection_hint(self) -> str:
        """What to check when the endpoint cannot be reached (proxy variables named, never shown)."""
        proxies = [name for name in _PROXY_VARIABLES if os.environ.get(name)]
        proxy = f"the proxy in {', '.join(proxies)}" if proxies else "any proxy between (none is set here)"
        where = (
            "ANTHROPIC_BASE_URL (set to it)"
            if os.environ.get("ANTHROPIC_BASE_URL")
            else "ANTHROPIC_BASE_URL (not set: this is the provider's own endpoint)"
        )
        return f"Check {where}, the network, and {proxy}."

    def _unreachable_message(self, what: str, elapsed: float) -> str:
        return (
            f"could not connect to the Messages API at {self.url} for {elapsed:.0f} s ({what}), and it "
            f"has not answered once since the server started. {self.connection_hint()} "
            "Every task waiting on it failed with this; spawn them again once it answers."
        )

    def _base_url_hint(self) -> str:
        if not os.environ.get("ANTHROPIC_BASE_URL"):
            return ""
        return f" (and check ANTHROPIC_BASE_URL, {self.url}: the key must be one that endpoint accepts)"
