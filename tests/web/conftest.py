"""A real browser for the web client's tests: Debian's chromium driven by Playwright.

Playwright's own browser download is never used (it cannot work offline); ``./run setup`` and
``.ci/run`` install the ``chromium`` package when it is missing. Without it the browser tests
fail with a message saying so: they are never skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
    expect,
)

from tests.support import ROOT, new_address

CHROMIUM = Path(os.environ.get("BLENDTUNE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of the key screens, kept as the run's artefacts.
ARTEFACTS = Path(os.environ.get("BLENDTUNE_TEST_ARTEFACTS", ROOT / "reports" / "web"))

NewPage = Callable[..., "AsyncIterator[Page]"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
            "(`./run setup` installs it, or `apt-get install chromium`)",
            pytrace=False,
        )
    # Conditions are awaited, never slept on; on a loaded 2-core machine they take a while.
    expect.set_options(timeout=15_000)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


class Person:
    """One person's browser: a context of their own (cookies, storage) and a page."""

    def __init__(self, context: BrowserContext, page: Page, name: str) -> None:
        self.context = context
        self.page = page
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"{name}: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # Failed requests the page handles itself (404 peaks, refused sockets during a
        # restart) are logged by Chromium as console errors; scripts' own errors are not.
        if message.type == "error" and "Failed to load resource" not in message.text:
            if "WebSocket" not in message.text:
                self.errors.append(f"{self.name}: {message.text}")

    async def screenshot(self, name: str) -> Path:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{name}.png"
        await self.page.evaluate("document.querySelector('#toasts')?.replaceChildren()")
        await self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
async def people(browser: Browser) -> AsyncIterator[Callable[..., object]]:
    """``await people("alice", width=...)`` opens a new person's browser."""
    opened: list[Person] = []

    async def open_person(name: str, *, width: int = 1280, height: int = 900) -> Person:
        context = await browser.new_context(
            viewport={"width": width, "height": height},
            # An address of their own, so per-address rate limits do not couple tests.
            extra_http_headers={"X-Forwarded-For": new_address()},
            accept_downloads=True,
        )
        context.set_default_timeout(30_000)
        page = await context.new_page()
        person = Person(context, page, name)
        opened.append(person)
        return person

    yield open_person
    errors = [e for p in opened for e in p.errors]
    for person in opened:
        await person.context.close()
    assert not errors, errors
