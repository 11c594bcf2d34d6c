"""What ``run`` shows on stderr while a plan runs: each retry and its cause as it happens, each task as it
ends, and, on a terminal, a live table of the running tasks.

Each retry is a line as it happens: the registry tells its retry listeners before the wait, with the
cause and the wait ("rate limited (429); retrying in 2.0 s (attempt 2)"), so a task's retries always show
before its end.

On a terminal the live table is ``rich``'s (imported here only then: the server never pays for it): a
row per running task with its elapsed time, tokens, cost and latest status line, under a footer of
counts and the spawn's usage so far; the retry and end lines scroll above it. Elsewhere (a pipe, a
file, CI) the same lines come plain, one per event.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, Protocol, TextIO

import anyio

from ...server import RetryNotice, SpawnReceipt, TaskRegistry, TaskSnapshot

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

POLL_S: Final = 0.25  #: how often the live table is redrawn

OnFinish = Callable[[TaskSnapshot], Awaitable[None]]


class _Display(Protocol):
    def line(self, text: str) -> None: ...

    def refresh(self) -> None: ...


class _Lines:
    """One plain line per event."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def line(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def refresh(self) -> None:
        pass


class _Watch:
    """The events of one spawn, as lines for a display."""

    def __init__(self, registry: TaskRegistry, receipt: SpawnReceipt) -> None:
        self.registry = registry
        self.receipt = receipt
        self.ids = [t.task_id for t in receipt.tasks]
        self.finished = 0

    def running(self) -> list[TaskSnapshot]:
        """Every running task of the registry: the spawn's and its synthesis's (``run`` has no others)."""
        return self.registry.running_here()

    @staticmethod
    def retry(notice: RetryNotice) -> str:
        return f"[retry] {notice.label}: {notice.note}"

    def end(self, snap: TaskSnapshot) -> str:
        self.finished += 1
        how = snap.state.value if snap.error is None else f"{snap.state.value} ({snap.error.kind.value})"
        elapsed = f" in {snap.elapsed_s:.1f} s" if snap.elapsed_s is not None else ""
        return f"[{self.finished}/{len(self.ids)}] {snap.label}: {how}{elapsed}"


@asynccontextmanager
async def showing_progress(
    registry: TaskRegistry, receipt: SpawnReceipt, stream: TextIO | None = None
) -> AsyncGenerator[OnFinish]:
    """Show the spawn's progress on ``stream`` (stderr) until the block ends; yields what to call with each
    task as it ends (``finish_plan``'s ``on_finish``)."""
    watch = _Watch(registry, receipt)
    async with _display(watch, stream or sys.stderr) as display:

        async def on_finish(snap: TaskSnapshot) -> None:
            display.line(watch.end(snap))

        registry.on_retry(lambda notice: display.line(watch.retry(notice)))
        async with anyio.create_task_group() as group:
            group.start_soon(_poll, watch, display)
            try:
                yield on_finish
            finally:
                group.cancel_scope.cancel()


async def _poll(watch: _Watch, display: _Display) -> None:
    while True:
        display.refresh()
        await anyio.sleep(POLL_S)


@asynccontextmanager
async def _display(watch: _Watch, stream: TextIO) -> AsyncGenerator[_Display]:
    if not stream.isatty():
        yield _Lines(stream)
        return
    from rich.console import Console
    from rich.live import Live

    console = Console(file=stream)
    # transient: the table goes when the run ends; the lines printed above it stay. The logging
    # handler writes to whatever sys.stderr is (see cli), so its records land above the table too.
    with Live(console=console, transient=True, auto_refresh=False, redirect_stdout=False) as live:
        yield _LiveTable(watch, console, live.update)


class _LiveTable:
    """The running tasks as a table that ``rich`` redraws in place, the lines above it."""

    def __init__(self, watch: _Watch, console: Console, update: Callable[..., None]) -> None:
        self._watch = watch
        self._console = console
        self._update = update

    def line(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False)

    def refresh(self) -> None:
        self._update(self._render(), refresh=True)

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table

        watch = self._watch
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("task", "state", "elapsed", "tokens in/out", "cost", "status"):
            table.add_column(column, overflow="ellipsis", no_wrap=True)
        for snap in watch.running():
            usage = snap.usage
            table.add_row(
                snap.label,
                snap.state.value,
                f"{snap.elapsed_s or 0:.0f} s",
                f"{usage.input_tokens}/{usage.output_tokens}",
                "?" if usage.cost_usd is None else f"${usage.cost_usd:.4f}",
                snap.note or "",
            )
        return Group(table, self._footer())

    def _footer(self) -> str:
        watch = self._watch
        counts = watch.registry.counts(watch.ids)
        usage = watch.registry.group_summary(watch.receipt.group_id).usage
        cost = "cost unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
        return (
            f"{counts.ended}/{len(watch.ids)} done, {counts.running} running, {counts.queued} queued; "
            f"{usage.input_tokens} in / {usage.output_tokens} out tokens, {cost}"
        )
