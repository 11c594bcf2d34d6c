"""The pages' live updates: one server-sent event stream per page, coalesced.

Each stream reads its page's view again every ``TICK_S`` (less often for a page that is slow to read)
and sends it only when it changed: an update
is the whole view, never a diff, so however many changes happened between two reads the client gets
one message, and a client never needs the ones it missed. The next view is read only once the last
one was written to the client, so a slow client holds one message (not a queue) and slows nobody but
itself: the engine never waits for it. A comment line now and then keeps proxies from closing an idle
stream. The stream ends when the dashboard closes, or with a ``gone`` event when its group is no
longer there (evicted, or never the reader's).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Final

import anyio

from ...server import UnknownTask

#: how often a stream reads its page's view at most; what "live" means on the page
TICK_S: Final = 0.25
#: a stream waits at least this many times as long as its last read took: a big group's page costs the
#: server a bounded share of its time (about a fifth) however many tasks it shows
_WAIT_PER_READ: Final = 4
_KEEPALIVE_TICKS: Final = 60


async def updates(read_view: Callable[[], Awaitable[str]], closing: anyio.Event) -> AsyncGenerator[str]:
    """The event stream's text: the view (as JSON) each time it changed, until ``closing`` is set."""
    last: str | None = None
    quiet = 0
    while not closing.is_set():
        started = anyio.current_time()
        try:
            view = await read_view()
        except UnknownTask:
            yield "event: gone\ndata: {}\n\n"
            return
        if view != last:
            last, quiet = view, 0
            yield f"event: view\ndata: {view}\n\n"
        elif (quiet := quiet + 1) >= _KEEPALIVE_TICKS:
            quiet = 0
            yield ": still here\n\n"
        with anyio.move_on_after(max(TICK_S, _WAIT_PER_READ * (anyio.current_time() - started))):
            await closing.wait()
