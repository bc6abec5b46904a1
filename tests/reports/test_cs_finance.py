"""Issue #26 items 3-6: the customer-success and finance dashboards and reports, the seeds' KPI
scorecard, one definition of persona satisfaction, the week so far. Pure over the ports (memory
documents made by the health and cost capabilities' own code, metric samples folded by the query
module); the pages in Chromium are in test_cs_finance_pages.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from functions.health.personas import Answer
from functions.reports import documents
from functions.reports.audiences import load_audiences
from functions.reports.dashboard_build import build_dashboard
from functions.reports.figures import DocumentFigures
from functions.reports.kpi_figures import SCORECARD, KpiTarget
from functions.reports.mailing import PeriodNotOver, choose_period
from functions.reports.panels import DOCUMENT_FIGURES, load_catalog
from functions.reports.period import week, week_so_far
from functions.reports.render import render_view
from functions.reports.report import build_report
from functions.reports.settings import ReportsSettings
from functions.reports.source import MemoryAlertSource
from shared.metrics.fold import Accumulator, Fold
from shared.metrics.query_model import MetricQuery, QueryResult
from shared.topology import topology
from tests.reports.cs_finance_docs import (
    at,
    customer,
    opportunity,
    persona_week,
    run,
    snapshot,
    source,
)

NOW = datetime(2026, 12, 9, 15, tzinfo=UTC)  # a Wednesday
TODAY = NOW.date()
CATALOG = load_catalog()
SETTINGS = ReportsSettings()
AUDIENCES = load_audiences(SETTINGS.audiences_file, SETTINGS.dashboards_file)


class Samples:
    """Metric samples per metric (labels, at, value), folded by the query module itself."""

    def __init__(self, samples: dict[str, list[tuple[dict[str, str], datetime, float]]] | None = None):
        self.samples = samples or {}

    def query(self, query: MetricQuery) -> QueryResult:
        fold = Fold(query.agg, query.start, query.end, query.step, query.labels, query.group_by, query.across)
        for labels, when, value in self.samples.get(query.metric, []):
            if not (query.start <= when < query.end) or not fold.accepts(labels):
                continue
            steps = fold.group(labels).steps
            index = fold.index((when - query.start).total_seconds())
            steps.setdefault(index, Accumulator()).add_samples([value], increment=False)
        return QueryResult(metric=query.metric, agg=query.agg, series=fold.series())


def customers_today() -> list[dict]:
    fired = at(TODAY - timedelta(days=2), 0)
    return [
        customer("acme", 82.0, "healthy", as_of=TODAY, created=at(date(2026, 6, 1)), nps=60, nps_answers=30),
        customer(
            "globex",
            55.5,
            "at_risk",
            as_of=TODAY,
            created=at(date(2026, 5, 1)),
            csm="Sam Lee",
            movers=["engagement -20.0: active_days 18 -> 6"],
            fired={"training_outreach": fired},
            nps=20,
            nps_answers=10,
        ),
        customer(
            "initech",
            31.2,
            "churn_risk",
            as_of=TODAY,
            created=at(date(2026, 4, 1)),
            active_days=0,
            fired={"retention_campaign": fired},
            plan="free",
            segment="enterprise",
        ),
        # Registered 10 days ago; its first record with a request is 3 days after registration.
        customer("newco", 75.0, "healthy", as_of=TODAY, created=at(TODAY - timedelta(days=10), 12)),
    ]


def newco_scores() -> dict[str, dict]:
    created = TODAY - timedelta(days=10)
    out = {}
    for i in range(11):
        day = created + timedelta(days=i)
        active = 0 if i < 3 else i - 2
        out[f"newco:{day.isoformat()}"] = {"components": {"engagement": {"inputs": {"active_days": active}}}}
    return out


def full_source() -> documents.MemoryDocumentSource:
    monday = TODAY - timedelta(days=TODAY.weekday())
    answers = [Answer(persona="Lua", helpful=i % 4 != 0) for i in range(200)]
    answers += [Answer(persona="Elro", helpful=i % 2 == 0, rating=4) for i in range(100)]
    return source(
        customers=customers_today(),
        runs={
            TODAY - timedelta(days=1): run(
                TODAY - timedelta(days=1), {"healthy": 3, "at_risk": 0, "churn_risk": 1}
            ),
            TODAY: run(TODAY, {"healthy": 2, "at_risk": 1, "churn_risk": 1}, {"training_outreach": 1}),
        },
        personas={
            monday - timedelta(days=7): persona_week(
                monday - timedelta(days=7), answers, {"Lua": 500, "Elro": 100, "Riri": 250, "Nana": 250}
            )
        },
        snapshots={
            TODAY - timedelta(days=1): snapshot(
                TODAY - timedelta(days=1),
                opportunities=[opportunity("Resize vm-1", 120.0), opportunity("Idle ip", 7.3)],
            )
        },
        scores=newco_scores(),
        incidents=[
            {"id": "i1", "opened_at": NOW - timedelta(hours=30), "resolved_at": NOW - timedelta(hours=29)},
            {"id": "i2", "opened_at": NOW - timedelta(hours=10), "resolved_at": NOW - timedelta(hours=7)},
        ],
    )


def dashboard(name: str, docs: documents.MemoryDocumentSource, metrics: Samples | None = None):
    return build_dashboard(
        CATALOG.dashboards[name],
        metrics or Samples(),
        MemoryAlertSource(),
        window="1h",
        region=None,
        now=NOW,
        documents=docs,
    )


def panel(view, panel_id: str):
    return next(p for p in view.panels if p.id == panel_id)


def test_every_document_figure_has_a_builder_and_the_collections_are_the_capabilities() -> None:
    from functions.health.store import PERSONAS_COLLECTION, SCORES_COLLECTION
    from shared.customer_keys import CUSTOMERS_COLLECTION

    figures = DocumentFigures.for_dashboard(documents.MemoryDocumentSource({}), now=NOW, week=None)
    for name in DOCUMENT_FIGURES:
        assert callable(figures.builder(name)), name
    assert figures.builder("health.no_such_figure") is None
    assert documents.HEALTH_PERSONAS == PERSONAS_COLLECTION
    assert documents.HEALTH_SCORES == SCORES_COLLECTION
    assert documents.CUSTOMERS == CUSTOMERS_COLLECTION


def test_customer_success_dashboard_from_the_health_documents() -> None:
    view = dashboard("customer_success", full_source())
    categories = panel(view, "categories")
    assert [(r.label, r.value) for r in categories.rows] == [
        ("Healthy", 2),
        ("At risk", 1),
        ("Churn risk", 1),
    ]
    assert categories.rows[0].share == 0.5
    trend = panel(view, "category_trend")
    assert {s.label: [v for _, v in s.points] for s in trend.series}["Churn risk"] == [1.0, 1.0]
    assert panel(view, "average_score").value == pytest.approx((82 + 55.5 + 31.2 + 75) / 4, abs=0.05)
    assert panel(view, "average_score").status == "warning"  # 60.9: under the 70 target, at risk to 60
    at_risk = panel(view, "at_risk")
    assert [r.label for r in at_risk.rows] == ["Initech (initech)", "Globex (globex)"]  # lowest first
    churn, risk = at_risk.rows
    assert churn.status == "breach"
    assert risk.status == "warning"
    assert "retention campaign sent 2026-12-07" in churn.detail
    assert "plan free" in churn.detail
    assert "segment enterprise" in churn.detail
    assert "CSM Sam Lee" in risk.detail
    assert "active_days 18 -> 6" in risk.detail
    assert "training outreach sent" in risk.detail
    # NPS pooled by answers: (60*30 + 20*10) / 40 = 50 (met at 50).
    assert panel(view, "nps").value == 50.0
    assert panel(view, "nps").status == "ok"
    # newco's first record with a request is its 4th day: registered at noon, 2.5 days to value.
    ttv = panel(view, "time_to_value")
    assert ttv.value == 2.5
    assert ttv.status == "ok"
    assert panel(view, "actions").rows[0].label == "training outreach"
    for fmt in ("html", "json", "markdown", "text"):
        body = render_view(view, fmt, CATALOG)
        assert "retention campaign sent 2026-12-07" in body, fmt


def test_finance_dashboard_from_the_cost_snapshot() -> None:
    view = dashboard("finance", full_source())
    mtd = panel(view, "month_to_date")
    assert mtd.value is not None
    assert mtd.value > 0
    assert mtd.status in ("ok", "warning", "breach")
    assert [r.label for r in mtd.rows] == ["month to date", "target so far", "budget so far"]
    forecast = panel(view, "forecast")
    low, fc, high = (r.value for r in forecast.rows[:3])
    assert low <= fc <= high
    assert "band" in forecast.text
    anomalies = panel(view, "anomalies")
    assert [r.label for r in anomalies.rows] == [f"{TODAY - timedelta(days=3)} Cloud Run"]
    assert anomalies.status == "warning"
    opportunities = panel(view, "opportunities")
    assert [(r.label, r.value) for r in opportunities.rows] == [("Resize vm-1", 120.0), ("Idle ip", 7.3)]
    assert opportunities.value == pytest.approx(127.3)
    assert panel(view, "per_request").value == 100.0
    per_customer = panel(view, "per_customer")
    # The month-end forecast over the 4 customers the latest run scored, against $50.
    assert per_customer.value == pytest.approx(fc / 4)
    assert per_customer.rows[0].label == "acme"
    assert "not attributed" in per_customer.note
    assert panel(view, "savings").value is not None


def test_no_documents_say_why_never_zero() -> None:
    for name in ("customer_success", "finance"):
        view = dashboard(name, source())
        for p in view.panels:
            assert p.status == "no_data", (name, p.id)
            assert p.note, (name, p.id)
    missing = dashboard(
        "finance",
        source(snapshots={TODAY: snapshot(TODAY, opportunities=None, note="Recommender API failed: 403")}),
    )
    assert "Recommender API failed: 403" in panel(missing, "opportunities").note


def test_kpi_scorecard_grades_each_kpi_with_definition_and_target() -> None:
    # 10 hours of traffic in the week, one of them with 10% server errors: 90% of hours met the SLO.
    samples = []
    for hour in range(10):
        when = NOW - timedelta(hours=hour + 2)
        for i in range(100):
            status = "503" if hour == 3 and i < 10 else "200"
            samples.append(({"http.response.status_code": status}, when, 0.02))
    view = dashboard("overview", full_source(), Samples({"http.server.request.duration": samples}))
    kpis = {r.label: r for r in panel(view, "kpis").rows}
    assert list(kpis) == [
        "Average health score",
        "Churn rate",
        "Time to value",
        "Active customers",
        "NPS",
        "MTTR",
        "SLO compliance",
        "Cost per customer",
        "Quarterly savings",
    ]
    average = kpis["Average health score"]
    assert average.status == "warning"
    assert average.text == "60.9: at risk"
    assert kpis["NPS"].text == "+50.0: met"
    assert kpis["Time to value"].status == "ok"
    assert kpis["Active customers"].value == 0.75
    assert kpis["Active customers"].status == "ok"
    # MTTR: the two incidents resolved in the week took 1 h and 3 h: 2 h mean, met (< 2 h is at 2 h).
    assert kpis["MTTR"].value == 7200
    assert kpis["MTTR"].status == "ok"
    assert kpis["SLO compliance"].value == pytest.approx(0.9)
    assert kpis["SLO compliance"].status == "breach"
    # A registry from before the lifecycle records no departure: no data, and why; never a
    # made-up figure.
    assert kpis["Churn rate"].status == "no_data"
    assert "deactivated_at" in kpis["Churn rate"].detail
    for row in kpis.values():
        assert "Target" in row.detail, row.label
    empty = {r.label: r for r in panel(dashboard("overview", source()), "kpis").rows}
    assert all(r.status == "no_data" and "No data:" in r.detail for r in empty.values())


def test_churn_is_the_deactivations_of_the_last_30_days() -> None:
    """The health API's lifecycle records a departure as a deactivation: 1 of the 4 customers
    registered before the 30 days was deactivated within them (5 days ago); one deactivated long
    before and one reactivated do not count."""
    customers = customers_today()
    for c in customers:
        c.update(status="active", deactivated_at=None)
    customers[2].update(status="inactive", deactivated_at=at(TODAY - timedelta(days=5)))
    customers.append(
        {**customers[0], "id": "gone", "status": "inactive", "deactivated_at": at(TODAY - timedelta(days=90))}
    )
    customers.append({**customers[0], "id": "back", "status": "active", "deactivated_at": None})
    docs = full_source()
    docs.docs["customers"] = {c["id"]: c for c in customers}
    kpis = {r.label: r for r in panel(dashboard("overview", docs), "kpis").rows}
    # registered before the window and not gone before it: acme, globex, initech, back (newco is
    # 10 days old, gone left 90 days ago); initech left within it.
    assert kpis["Churn rate"].value == pytest.approx(1 / 4)
    assert kpis["Churn rate"].status == "breach"


def test_leadership_report_has_the_scorecard_and_the_opportunities() -> None:
    period = week_so_far(NOW, "UTC")
    report = build_report(
        AUDIENCES.audiences["leadership"],
        period,
        CATALOG,
        Samples(),
        MemoryAlertSource(),
        documents=full_source(),
        now=NOW,
    )
    sections = {s.id: s for s in report.sections}
    scorecard = [f.title for f in sections["kpis"].figures]
    assert "Cost per customer" in scorecard
    assert "Quarterly savings" in scorecard
    nps = next(f for f in sections["kpis"].figures if f.title == "NPS")
    assert nps.text == "+50.0: met"
    assert "Target > 50" in nps.target
    opportunities = next(t for t in sections["cost"].tables if t.ref == "finance.opportunities")
    assert [r.label for r in opportunities.rows] == ["Resize vm-1", "Idle ip"]


def test_satisfaction_is_healths_weekly_figure_feedback_once_per_request() -> None:
    """The routing feedback counter counts a resend and a changed answer again; health reads each
    request's latest answer once. The report shows health's figure with its interval."""
    monday = TODAY - timedelta(days=TODAY.weekday())
    last_week = monday - timedelta(days=7)
    # Health: Lua 150 of 200 answers helpful (75%). The counter saw 600 more helpful resends.
    counter = [({"persona": "Lua", "helpful": "true"}, at(last_week, 12), 750.0)]
    counter += [({"persona": "Lua", "helpful": "false"}, at(last_week, 12), 50.0)]
    counter += [({"persona": "Lua", "endpoint": "recommend"}, at(last_week, 12), 900.0)]
    metrics = Samples({"ion.routing.feedback": counter[:2], "ion.routing.persona.selected": counter[2:]})
    for audience in ("engineering", "leadership", "support", "customer_success"):
        report = build_report(
            AUDIENCES.audiences[audience],
            week(f"{last_week.isocalendar().year}-W{last_week.isocalendar().week:02d}", "UTC"),
            CATALOG,
            metrics,
            MemoryAlertSource(),
            documents=full_source(),
            now=NOW,
        )
        figures = [f for s in report.sections for f in s.figures if f.ref == "quality.satisfaction"]
        assert figures, audience
        # (150 Lua + 50 Elro helpful) / 300 answers, not the counter's 750 / 800.
        assert figures[0].value == pytest.approx(200 / 300, abs=1e-3), audience
        tables = {t.ref: t for s in report.sections for t in s.tables}
        lua = next(r for r in tables["quality.satisfaction"].rows if r.label == "Lua")
        assert lua.text.startswith("75.0% helpful (95% CI")
        assert "200 answers" in lua.detail
        assert {r.label for r in tables["quality.persona_drift"].rows} == {
            "against the expected mix",
            "against the baseline mix",
        }
        if "quality.persona_mix" in tables:
            # Routed requests only: recommend's 900 picks are not in the mix.
            assert sum(float(r.text.replace(",", "")) for r in tables["quality.persona_mix"].rows) == 1100


def test_week_so_far_is_a_partial_report_not_refused() -> None:
    with pytest.raises(PeriodNotOver):
        choose_period(kind="week", week="2026-W50", month=None, zone_name="UTC", reference=NOW, now=NOW)
    period = choose_period(
        kind="week", week=None, month=None, zone_name="UTC", reference=NOW, now=NOW, partial=True
    )
    assert period.partial
    assert period.label == "2026-W50-partial"
    assert period.start == datetime(2026, 12, 7, tzinfo=UTC)
    assert period.end == NOW
    assert period.previous_start == period.start - timedelta(days=7)
    assert period.previous_end == NOW - timedelta(days=7)  # the same span of the week before
    report = build_report(
        AUDIENCES.audiences["customer_success"],
        period,
        CATALOG,
        Samples(),
        MemoryAlertSource(),
        documents=full_source(),
        now=NOW,
    )
    from functions.reports.mail import render_report

    rendered = render_report(report, SETTINGS)
    assert "2026-W50-partial" in rendered.subject
    assert "partial: so far" in rendered.text
    assert "Initech (initech)" in rendered.text
    assert "retention campaign sent" in rendered.html


def test_customer_success_and_finance_are_mailed_weekly() -> None:
    assert {"customer_success", "finance"} <= set(AUDIENCES.audiences)
    schedules = {s.path: s for s in topology().schedules.values()}
    for audience in ("customer_success", "finance"):
        schedule = schedules[f"/v1/reports/{audience}"]
        assert schedule.cron.endswith("* * 1")  # Mondays
        assert f"ION_REPORTS_TO_{audience.upper()}" in topology().functions["mail_reports"].settings_from


def test_time_to_value_is_exact_from_checkpoints_and_counts_the_never_active() -> None:
    def records(cid: str, created: date, first_active: int | None, days: int) -> dict[str, dict]:
        return {
            f"{cid}:{(created + timedelta(days=o)).isoformat()}": {
                "components": {
                    "engagement": {
                        "inputs": {"active_days": 0 if first_active is None or o < first_active else 1}
                    }
                }
            }
            for o in range(1, days + 1)
        }

    registered = {"lateco": 40, "ghostco": 35, "babyco": 2, "newco": 10}
    customers = [
        customer(cid, 50.0, "at_risk", as_of=TODAY, created=at(TODAY - timedelta(days=age), 12))
        for cid, age in registered.items()
    ]
    scores = {
        **records("lateco", TODAY - timedelta(days=40), 9, 40),  # between the 7 and 10 checkpoints
        **records("ghostco", TODAY - timedelta(days=35), None, 35),  # never: more than 28
        **records("babyco", TODAY - timedelta(days=2), None, 2),  # too new to tell
        **records("newco", TODAY - timedelta(days=10), 3, 10),
    }

    class Counting(documents.MemoryDocumentSource):
        asked = 0

        def health_scores(self, doc_ids: list[str]) -> dict[str, dict]:
            Counting.asked += len(doc_ids)
            return super().health_scores(doc_ids)

    docs = Counting(source(customers=customers, scores=scores).docs)
    figures = DocumentFigures.for_dashboard(docs, now=NOW, week=None)
    # newco 2.5 days, lateco 8.5 (its 9th day, registered at noon), ghostco more than 28: median 8.5.
    assert figures.health.time_to_value() == (8.5, 3, 1, "")
    assert Counting.asked <= 4 * 17  # checkpoints and the days between two, not 28 reads each


def test_the_run_of_tomorrow_scores_today_and_counts_in_the_window() -> None:
    """`make demo` scores a customer registered today with the run as of tomorrow (the day it
    scores is the day before its as_of): the dashboard shows it, categories and trend alike."""
    tomorrow = TODAY + timedelta(days=1)
    docs = source(runs={tomorrow: run(tomorrow, {"healthy": 1, "at_risk": 0, "churn_risk": 0})})
    view = dashboard("customer_success", docs)
    assert panel(view, "categories").rows[0].value == 1
    assert panel(view, "category_trend").series[0].points[0][0].date() == tomorrow


@pytest.mark.parametrize("target", SCORECARD, ids=lambda t: t.name)
def test_each_kpi_grades_as_its_target_reads(target: KpiTarget) -> None:
    """The target's text is written from the thresholds that grade: at the met bound it is met,
    between the bounds at risk, past the missed bound missed, and the text names both bounds."""
    past = 1 if target.better == "lower" else -1
    between = (target.met + target.missed) / 2
    assert target.grade(target.met) == "ok"
    assert target.grade(between) == "warning"
    assert target.grade(target.missed + past * abs(target.missed) * 0.01) == "breach"
    assert target.grade(None) == "no_data"
    assert target.bound(target.met) in target.target
    assert target.bound(target.missed) in target.target
    assert target.kpi(None, "d").text == "no data"
