"""What every dashboard page must do in headless Chromium, checked once for all page tests: one
title and heading, every panel with its status written out, nothing wider than the viewport, no
console error, nothing loaded from another origin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reports.cdp import Browser, Page, chromium_binary

STATUSES = {"OK", "WARNING", "BREACH", "NO DATA", "INFO"}

# Elements wider than the viewport, or reaching past its right edge.
OVERFLOW = """(() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5);
  }).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && e.className.baseVal === undefined ? '.' + e.className : ''));
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 10)};
})()"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is not installed (make test installs it with apt)")
    chromium = Browser(binary)
    yield chromium
    chromium.close()


def check_page(browser: Browser, url: str, width: int, origin: str, *, has_panels: bool = True) -> str:
    """Open ``url`` at ``width`` px, assert what every page must do, and return its text."""
    with browser.page() as page:
        page.open(url, width)
        assert page.evaluate("document.title").endswith("ION Ops")
        assert page.evaluate("document.querySelectorAll('h1').length") == 1
        if has_panels:
            _check_panels(page)
        layout = page.evaluate(OVERFLOW)
        assert layout["width"] <= width
        assert layout["scroll"] <= layout["width"], (url, width, layout)
        assert layout["wide"] == [], (url, width, layout)
        assert page.errors() == [], url
        foreign = [u for u in page.requested_urls() if not u.startswith(origin) and not u.startswith("data:")]
        assert foreign == [], url
        return str(page.evaluate("document.body.innerText"))


def _check_panels(page: Page) -> None:
    panels = page.evaluate("document.querySelectorAll('section.panel').length")
    labels = page.evaluate(
        "[...document.querySelectorAll('section.panel h2 .status')].map(e => e.textContent)"
    )
    assert panels > 0
    assert len(labels) == panels
    assert set(labels) <= STATUSES
