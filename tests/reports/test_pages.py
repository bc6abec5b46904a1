"""The dashboard pages in a real headless Chromium (Debian's package): each renders, nothing
overflows at 360 px, no console error, and no request leaves the page's own origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.reports.cdp import Browser
from tests.reports.conftest import minutes
from tests.reports.incident_docs import incident_doc
from tests.reports.page_checks import browser, check_page  # noqa: F401 - the browser fixture
from tests.reports.traffic import seed

MIN, HOUR = timedelta(minutes=1), timedelta(hours=1)


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
def test_pages_render_fit_and_stay_local(browser: Browser, live, width: int) -> None:  # noqa: F811
    for path in PAGES:
        for window in ("1h", "7d") if path != "/dashboards" else ("1h",):
            check_page(
                browser,
                f"{live.url}{path}?window={window}",
                width,
                live.url,
                has_panels=path != "/dashboards",
            )
