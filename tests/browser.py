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


# What a phone reports to the page (Playwright's mobile emulation): the widths people have most.
PHONES = {
    "360x740": {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True},
    "414x896": {"viewport": {"width": 414, "height": 896}, "is_mobile": True, "has_touch": True},
}

# Whatever does not fit a phone's screen: a sideways scroll, a control (outside the scrolling
# conversation: wholly; inside it: across) beyond the viewport. A mobile browser zooms out to
# show a page wider than the screen (innerWidth grows with it), so the width is the layout
# viewport's, the screen's.
_OUTSIDE = """() => {
  const w = Math.min(innerWidth, document.documentElement.clientWidth), h = innerHeight, out = [];
  const width = document.scrollingElement.scrollWidth;
  if (width > w) out.push(`page ${width} px wide on a ${w} px screen`);
  const log = document.getElementById("log");
  for (const el of document.querySelectorAll("button, input, select, textarea, label.photo")) {
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    const drawn = box.width && box.height && style.visibility !== "hidden" && style.opacity !== "0";
    if (!drawn) continue;
    const name = `${el.tagName.toLowerCase()}#${el.id} "${el.textContent.trim().slice(0, 30)}"`;
    if (box.left < 0 || box.right > w + 0.5) out.push(`${name} across ${box.left}-${box.right}`);
    if (!(log && log.contains(el)) && (box.top < 0 || box.bottom > h + 0.5))
      out.push(`${name} down ${box.top}-${box.bottom}`);
  }
  return out;
}"""

# Text in an emoji range drawn in a button: an empty box where no emoji font is installed.
_EMOJI_IN_BUTTONS = """() => Array.from(document.querySelectorAll("button, label"))
  .map(el => el.textContent)
  .filter(t => /[\\u2190-\\u2bff\\u{1f000}-\\u{1faff}\\ufe0f]/u.test(t))"""


def outside_the_screen(page: Any) -> list[str]:
    """What of the page lies outside a phone's screen (empty when everything fits)."""
    result: list[str] = page.evaluate(_OUTSIDE)
    return result


def emoji_in_buttons(page: Any) -> list[str]:
    result: list[str] = page.evaluate(_EMOJI_IN_BUTTONS)
    return result


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (rule: nodes)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
