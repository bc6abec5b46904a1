"""The finance and customer-success lists at a real customer count, with names as customers write
them, in every format; and the page's links keeping the reader's region and time zone."""

from __future__ import annotations

import re
from datetime import date, timedelta

from functions.reports.dashboard_build import build_dashboard
from functions.reports.figure_reads import LIST_ROWS
from functions.reports.render import render_view
from functions.reports.source import MemoryAlertSource
from tests.reports.cs_finance_docs import at, customer, run, snapshot, source
from tests.reports.test_cs_finance import CATALOG, NOW, TODAY, Samples, panel

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


def test_a_cut_per_customer_list_says_how_many_are_not_shown_and_what_they_cost() -> None:
    """With 180 customers the per-customer cost list showed the 50 dearest and nothing else: the
    page read as if ION had 50 customers with a cost (the at-risk list says it is cut)."""
    view, customers = finance_with_customers(180)
    per_customer = panel(view, "per_customer")
    assert len(per_customer.rows) == LIST_ROWS
    hidden = sorted(customers.values(), key=lambda c: -c["cost"])[LIST_ROWS:]
    assert f"The {len(hidden)} others" in per_customer.note
    assert f"${sum(c['cost'] for c in hidden):,.2f}" in per_customer.note
    for fmt in ("html", "markdown", "text"):
        assert f"The {len(hidden)} others" in render_view(view, fmt, CATALOG), fmt
    few, _ = finance_with_customers(3)
    assert "others" not in panel(few, "per_customer").note


def test_customer_names_cannot_break_the_markdown_table_or_inject_markup() -> None:
    """A customer named with a pipe split its Markdown row into extra cells, and its HTML tag was
    passed through raw to whatever renders the Markdown (the HTML page escapes it)."""
    hostile = customer(
        "acme", 31.0, "churn_risk", as_of=TODAY, created=at(date(2026, 6, 1)), movers=["usage fell"]
    )
    hostile["name"] = HOSTILE
    docs = source(
        customers=[hostile], runs={TODAY: run(TODAY, {"healthy": 0, "at_risk": 0, "churn_risk": 1})}
    )
    view = build_dashboard(
        CATALOG.dashboards["customer_success"], Samples(), MemoryAlertSource(), window="1h", region=None,
        now=NOW, documents=docs,
    )  # fmt: skip
    assert HOSTILE in panel(view, "at_risk").rows[0].label  # the view keeps the name as written
    html = render_view(view, "html", CATALOG)
    assert "<img" not in html
    markdown = render_view(view, "markdown", CATALOG)
    assert "<img" not in markdown
    (row,) = [line for line in markdown.splitlines() if "Acme" in line and line.startswith("|")]
    cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
    assert len(cells) == 4, row  # name, value, share, status
    assert "Acme \\| " in cells[0]
    assert HOSTILE in render_view(view, "text", CATALOG)  # plain text is not markup
    # An alert's labels and an incident's summary, outside any table, alike.
    from functions.reports.views import AlertView, IncidentView

    alerts = panel(view, "at_risk").model_copy(
        update={
            "rows": [],
            "alerts": [AlertView(rule="r", kind="threshold", severity="high", labels={"customer": HOSTILE},
                                 since=NOW, value=1.0, threshold=0.5)],
            "incidents": [IncidentView(rule="r", severity="high", labels={}, started=NOW, ended=None,
                                       duration_seconds=60, ongoing=True, summary=f"{HOSTILE} is down")],
        }
    )  # fmt: skip
    listed = render_view(view.model_copy(update={"panels": [alerts]}), "markdown", CATALOG)
    assert listed.count('Acme | "Ops" &lt;img src=x onerror=alert(1)&gt;') == 2
    assert "<img" not in listed


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
