"""Headless Chromium from Debian's package (``/usr/bin/chromium``, which ``.ci/run`` installs), driven by
Playwright for Python: Playwright's own browser download cannot work offline, so it is pointed at it."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from playwright.async_api import Browser, async_playwright

CHROMIUM: Final = "/usr/bin/chromium"
_ARGS: Final = [
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: where the test run saves the screenshots the README shows
DOCS: Final = Path(__file__).resolve().parents[3] / "docs"
_LINK = re.compile(rb"dashboard: (http://\S+)")


@asynccontextmanager
async def chromium() -> AsyncGenerator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def dashboard_link(stderr: bytes | bytearray) -> str:
    """The link the server logged on stderr (``dashboard: http://…``)."""
    found = _LINK.search(stderr)
    assert found is not None, stderr.decode(errors="replace")
    return found.group(1).decode()
