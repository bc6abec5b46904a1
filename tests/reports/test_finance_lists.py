"""The finance and customer-success lists at a real customer count, with names as customers write
them, in every format; and the page's links keeping the reader's region and time zone."""

from __future__ import annotations

import re
from datetime import timedelta

from functions.reports.dashboard_build import build_dashboard
from functions.reports.render import render_view
from functions.reports.source import MemoryAlertSource
from tests.reports.cs_finance_docs import run, snapshot, source
from tests.reports.test_cs_finance import CATALOG, NOW, TODAY, Samples

HOSTILE = 'Acme | "Ops" <img src=x onerror=alert(1)>'


def finance_with_customers(count: int):  # type: ignore[no-untyped-def]
    snap = snapshot(TODAY - timedelta(days=1), opportunities=[])
    customers = {
        f"customer-{i:03d}": {"requests": 1000 + i, "share": 0.5 / count, "cost": 1.0 + i / 100}
        for i in range(count)
    }
    snap["per_customer"]["customers"] = customers
    docs = source(
        runs={TODAY: run(TODAY, {"healthy": count, "at_risk": 0, "churn_risk": 0})},
        snapshots={TODAY - timedelta(days=1): snap},
    )
    view = build_dashboard(
        CATALOG.dashboards["finance"], Samples(), MemoryAlertSource(), window="1h", region=None, now=NOW,
        documents=docs,
    )  # fmt: skip
    return view, customers


def test_format_links_navigation_and_the_form_keep_the_region_and_the_readers_zone() -> None:
    """On europe-west1 in New York time, the JSON/Markdown/text links showed every region, and the
    dashboard links and the Show button went back to UTC axes."""
    view = build_dashboard(
        CATALOG.dashboards["overview"], Samples(), MemoryAlertSource(), window="24h", region="europe-west1",
        now=NOW, documents=source(),
    )  # fmt: skip
    html = render_view(view, "html", CATALOG, "America/New_York")
    footer = html[html.index("<footer>") :]
    links = re.findall(r'href="([^"]*format=[^"]*)"', footer)
    assert len(links) == 3
    for link in links:
        assert "&amp;region=europe-west1" in link, link
        assert "&amp;tz=America/New_York" in link, link
        assert "window=24h" in link, link
    nav = html[html.index("<nav") : html.index("</nav>")]
    for link in re.findall(r'href="([^"]*)"', nav):
        assert "&amp;tz=America/New_York" in link, link
    form = html[html.index("<form") : html.index("</form>")]
    assert '<input type="hidden" name="tz" value="America/New_York">' in form
    # A zone with a plus sign is sent as one (a bare "+" in a query string reads as a space).
    assert "tz=Etc/GMT%2B5" in render_view(view, "html", CATALOG, "Etc/GMT+5")
    utc = render_view(view, "html", CATALOG)
    assert "tz=" not in utc  # the default zone is not written into every link
