"""The dashboard pages in a real headless Chromium (Debian's package): each renders, nothing
overflows at 360 px, no console error, and no request leaves the page's own origin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.reports.cdp import Browser, chromium_binary
from tests.reports.conftest import minutes
from tests.reports.incident_docs import incident_doc
from tests.reports.traffic import seed

MIN, HOUR = timedelta(minutes=1), timedelta(hours=1)

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


@pytest.fixture
def live(fs, serve_capability):  # type: ignore[no-untyped-def]
    seed(minutes(datetime.now(UTC), 30), error_every=7)
    fs.collection("alert_states").document("a1").set(
        {
            "fingerprint": "a1",
            "rule": "latency-p95-unusual",
            "kind": "anomaly",
            "severity": "low",
            "labels": {"region": "asia-southeast1", "service": "routing-with-a-rather-long-service-name"},
            "state": "firing",
            "firing_since": datetime.now(UTC),
            "value": 0.061,
        }
    )
    # Incident records as the fan-out writes them: one resolved late, one open past its deadline
    # with a long unbroken title, and one from weeks ago for the trend.
    now = datetime.now(UTC)
    for doc in (
        incident_doc("p1-late", "P1", now - 5 * HOUR, acknowledged_after=40 * MIN, resolved_after=5 * HOUR),
        incident_doc("p2-open", "P2", now - 3 * HOUR, title="error-rate-high/" + "routing-service-" * 6),
        incident_doc("p3-old", "P3", now - 20 * 24 * HOUR, acknowledged_after=HOUR, resolved_after=9 * HOUR),
    ):
        fs.collection("incidents").document(doc["id"]).set(doc)
    return serve_capability("reports")


PAGES = [
    "/dashboards",
    *(
        f"/dashboards/{n}"
        for n in ("overview", "performance", "reliability", "cache", "infrastructure", "incidents")
    ),
]


@pytest.mark.parametrize("width", [360, 1440])
def test_pages_render_fit_and_stay_local(browser: Browser, live, width: int) -> None:
    for path in PAGES:
        for window in ("1h", "7d") if path != "/dashboards" else ("1h",):
            url = f"{live.url}{path}?window={window}"
            with browser.page() as page:
                page.open(url, width)
                assert page.evaluate("document.title").endswith("ION Ops")
                assert page.evaluate("document.querySelectorAll('h1').length") == 1
                if path != "/dashboards":
                    # Every panel rendered, each with its status written out.
                    panels = page.evaluate("document.querySelectorAll('section.panel').length")
                    labels = page.evaluate(
                        "[...document.querySelectorAll('section.panel h2 .status')].map(e => e.textContent)"
                    )
                    assert panels > 0
                    assert len(labels) == panels
                    assert set(labels) <= {"OK", "WARNING", "BREACH", "NO DATA", "INFO"}
                layout = page.evaluate(OVERFLOW)
                assert layout["width"] <= width
                assert layout["scroll"] <= layout["width"], (url, width, layout)
                assert layout["wide"] == [], (url, width, layout)
                assert page.errors() == [], url
                foreign = [
                    u
                    for u in page.requested_urls()
                    if not u.startswith(live.url) and not u.startswith("data:")
                ]
                assert foreign == [], url
