"""Real headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]


@contextmanager
def chromium_page(**context: Any) -> Iterator[Any]:
    """A phone-sized page in headless Chromium; skips (fails under CI) without Chromium.
    `context`: more options of Playwright's browser context (a geolocation and its permission).

    Anything the page's Content-Security-Policy blocked (an inline script or style left in a
    template) fails the test when the page is closed: such a page looks fine and does nothing."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            options = {"viewport": {"width": 390, "height": 844}, **context}
            page = browser.new_context(**options).new_page()
            blocked: list[str] = []
            page.on(
                "console",
                lambda message: (
                    blocked.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            yield page
            assert not blocked, f"blocked by the Content-Security-Policy: {blocked}"
        finally:
            browser.close()
