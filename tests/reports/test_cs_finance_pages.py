"""The customer-success, finance and overview (KPI scorecard) dashboards in headless Chromium, with
the same checks as the seeds' five (page_checks.py): each renders every panel with its status
written out, nothing overflows at 360 px, no console error, nothing loads from elsewhere. Their
documents are in the Firestore emulator, read by the served function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.health.personas import Answer
from tests.reports.cs_finance_docs import at, customer, opportunity, persona_week, run, snapshot
from tests.reports.page_checks import browser, check_page  # noqa: F401 - the browser fixture

PAGES = ["/dashboards", "/dashboards/customer_success", "/dashboards/finance", "/dashboards/overview"]


@pytest.fixture
def live_documents(fs, serve_capability):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    today = now.date()
    monday = today - timedelta(days=today.weekday())
    fired = at(today - timedelta(days=1))
    for doc in (
        customer(
            "acme", 82.0, "healthy", as_of=today, created=now - timedelta(days=200), nps=40, nps_answers=12
        ),
        customer(
            "a-customer-with-a-rather-long-identifier-name",
            33.0,
            "churn_risk",
            as_of=today,
            created=now - timedelta(days=120),
            movers=["engagement -41.3: active_days 28 -> 6", "tickets -12.0: open_tickets 1 -> 4"],
            fired={"retention_campaign": fired, "training_outreach": fired},
        ),
    ):
        fs.collection("customers").document(doc["id"]).set(doc)
    fs.collection("health_runs").document(today.isoformat()).set(
        run(today, {"healthy": 1, "at_risk": 0, "churn_risk": 1}, {"retention_campaign": 1})
    )
    answers = [Answer(persona=p, helpful=i % 3 != 0, rating=4) for p in ("Lua", "Elro") for i in range(60)]
    week = monday - timedelta(days=7)
    fs.collection("health_personas").document(week.isoformat()).set(
        persona_week(week, answers, {"Lua": 300, "Elro": 280, "Riri": 250, "Nana": 260})
    )
    body = snapshot(
        today, opportunities=[opportunity("Resize an over-provisioned instance in europe-west1", 88.4)]
    )
    fs.collection("cost_snapshots").document(today.isoformat()).set(
        {"as_of": today.isoformat(), "snapshot": body}
    )
    fs.collection("incidents").document("inc-1").set(
        {"id": "inc-1", "opened_at": now - timedelta(hours=5), "resolved_at": now - timedelta(hours=4)}
    )
    return serve_capability("reports")


@pytest.mark.parametrize("width", [360, 1440])
def test_cs_and_finance_pages_render_fit_and_stay_local(browser, live_documents, width: int) -> None:  # noqa: F811
    live = live_documents
    for path in PAGES:
        text = check_page(
            browser, f"{live.url}{path}?window=1h", width, live.url, has_panels=path != "/dashboards"
        )
        if path.endswith("customer_success"):
            assert "retention campaign sent" in text
        if path.endswith("finance"):
            assert "Resize an over-provisioned instance" in text
        if path.endswith("overview"):
            assert "MTTR" in text
            assert "Cost per customer" in text
