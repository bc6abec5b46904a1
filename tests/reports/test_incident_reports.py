"""Incident records in the reports, on the Firestore emulator: the source reads the documents the
fan-out writes; the incidents dashboard over HTTP; the engineering section and the leadership
trend; and the daily operations summary mailed over STARTTLS once per day under the scheduler's
retries, an empty day said plainly."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from devtools.processes import free_port
from functions.cost.store import FirestoreCostStore, day_to_doc
from functions.reports.audiences import load_audiences
from functions.reports.documents import FirestoreDocumentSource
from functions.reports.incident_records import INCIDENTS, FirestoreIncidentSource
from functions.reports.panels import load_catalog
from functions.reports.period import last_full_week
from functions.reports.report import build_report
from functions.reports.settings import get_reports_settings
from functions.reports.source import FirestoreAlertSource, StoreMetricSource
from shared.topology import load_topology
from tests.reports.business_docs import cost_day, days_of, snapshot_doc
from tests.reports.incident_docs import incident_doc
from tests.reports.smtp import SmtpServer

NY = ZoneInfo("America/New_York")
MIN, HOUR = timedelta(minutes=1), timedelta(hours=1)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path, free_port())
    yield server
    server.stop()


def mail_env(smtp: SmtpServer) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "ION_REPORTS_SMTP_CA_FILE": str(smtp.cert),
        "ION_REPORTS_FROM": "reports@ion.test",
        "ION_REPORTS_TO_OPERATIONS": "ops@ion.test",
        "ION_REPORTS_TO_ENGINEERING": "eng@ion.test",
        "ION_REPORTS_TO_LEADERSHIP": "lead@ion.test",
        "ION_REPORTS_CACHE_DASHBOARDS": "false",
    }


def store(fs, *docs: dict) -> None:  # type: ignore[no-untyped-def]
    for doc in docs:
        fs.collection(INCIDENTS).document(doc["id"]).set(doc)


def yesterday_at_five() -> datetime:
    """17:00 in New York on the day before today (a day whose summary time is past)."""
    local = datetime.now(NY).date() - timedelta(days=1)
    return datetime(local.year, local.month, local.day, 17, 0, tzinfo=NY).astimezone(UTC)


def test_the_source_reads_the_fanouts_documents(fs) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC).replace(microsecond=0)
    store(
        fs,
        incident_doc("in-window", "P1", now - 3 * HOUR, acknowledged_after=5 * MIN, resolved_after=HOUR),
        incident_doc("open", "P2", now - 2 * HOUR, acknowledged_after=10 * MIN),
        incident_doc("before", "P3", now - 30 * HOUR, acknowledged_after=HOUR, resolved_after=29 * HOUR),
    )
    bad = incident_doc("bad", "P1", now - HOUR)
    bad["priority"] = "urgent"
    store(fs, bad)
    source = FirestoreIncidentSource()
    opened = source.opened_between(now - 24 * HOUR, now)
    assert sorted(r.id for r in opened) == ["in-window", "open"]  # "bad" is logged and left out
    in_window = next(r for r in opened if r.id == "in-window")
    assert in_window.acknowledged_at == now - 3 * HOUR + 5 * MIN
    assert in_window.respond_by == now - 3 * HOUR + 15 * MIN
    assert sorted(r.id for r in source.resolved_between(now - 24 * HOUR, now)) == ["before", "in-window"]
    assert [r.id for r in source.open_now()] == ["open"]


def test_the_incidents_dashboard_over_http(fs, serve_capability) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    store(
        fs,
        incident_doc("a", "P1", now - 5 * HOUR, acknowledged_after=5 * MIN, resolved_after=HOUR),
        incident_doc("b", "P2", now - 30 * MIN, title="Error rate above 0.5% in us-central1"),
    )
    live = serve_capability("reports", env={"ION_REPORTS_CACHE_DASHBOARDS": "false"})
    answer = requests.get(f"{live.url}/dashboards/incidents?format=json&window=24h", timeout=120)
    assert answer.status_code == 200, answer.text
    panels = {p["id"]: p for p in answer.json()["panels"]}
    assert panels["opened"]["value"] == 2
    assert panels["within_target"]["value"] == 1.0  # b is pending: its deadlines are ahead
    (p1, p2) = panels["response"]["priorities"]
    assert (p1["priority"], p1["mtta_median_seconds"], p1["mttr_mean_seconds"]) == ("P1", 300, 3600)
    assert (p2["priority"], p2["acknowledged"], p2["pending"]) == ("P2", 0, 1)
    (still,) = panels["open"]["records"]
    assert still["id"] == "b"
    assert 1700 < still["age_seconds"] < 3600
    page = requests.get(f"{live.url}/dashboards/incidents?window=24h", timeout=120)
    assert "Error rate above 0.5% in us-central1" in page.text
    assert re.search(r"open for \d+ min", page.text)  # minutes, as people say them


def test_engineering_section_and_leadership_trend_read_the_records(fs) -> None:  # type: ignore[no-untyped-def]
    week = last_full_week(datetime.now(UTC), "America/New_York")
    store(
        fs,
        incident_doc("w1", "P1", week.start + 24 * HOUR, acknowledged_after=10 * MIN, resolved_after=HOUR),
        incident_doc(
            "w2", "P1", week.start + 48 * HOUR, acknowledged_after=20 * MIN, resolved_after=3 * HOUR
        ),
        incident_doc(
            "w0", "P2", week.previous_start + 24 * HOUR, acknowledged_after=HOUR, resolved_after=HOUR
        ),
    )
    settings = get_reports_settings()
    audiences = load_audiences(settings.audiences_file, settings.dashboards_file)

    def build(name: str):  # type: ignore[no-untyped-def]
        return build_report(
            audiences.audiences[name],
            week,
            load_catalog(),
            StoreMetricSource(),
            FirestoreAlertSource(),
            documents=FirestoreDocumentSource(),
            now=datetime.now(UTC),
            incidents=FirestoreIncidentSource(),
        )

    engineering = {s.id: s for s in build("engineering").sections}["incident_response"]
    figures = {f.ref: f for f in engineering.figures}
    assert figures["incidents.within_target"].value == 0.5  # w2 acknowledged after 20 min
    assert figures["incidents.within_target"].previous == 1.0
    assert figures["incidents.mttr"].value == pytest.approx(2 * 3600)
    assert figures["incidents.mttr"].previous == pytest.approx(3600)
    assert figures["incidents.mttr"].direction == "worse"
    (response, _open) = engineering.panels
    assert [p.priority for p in response.priorities] == ["P1"]
    assert response.priorities[0].mtta_median_seconds == 15 * 60
    leadership = {s.id: s for s in build("leadership").sections}["incident_trend"]
    mttr_trend = next(p for p in leadership.panels if p.id == "mttr_trend")
    assert [r.value for r in mttr_trend.rows[:2]] == [pytest.approx(7200), pytest.approx(3600)]
    assert leadership.chart is not None
    assert leadership.chart.ref == "incidents.mttr_trend"


def test_the_daily_summary_is_mailed_once_per_day_with_the_days_incidents(  # type: ignore[no-untyped-def]
    fs, smtp, serve_capability
) -> None:
    five = yesterday_at_five()
    local_day = five.astimezone(NY).date()
    midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=NY).astimezone(UTC)
    store(
        fs,
        incident_doc("today-ok", "P2", midnight + 9 * HOUR, acknowledged_after=5 * MIN, resolved_after=HOUR),
        incident_doc(
            "today-late", "P1", midnight + 10 * HOUR, acknowledged_after=40 * MIN, resolved_after=2 * HOUR
        ),
        incident_doc("yesterday", "P1", midnight - 5 * HOUR, acknowledged_after=5 * MIN, resolved_after=HOUR),
    )
    history = {
        d: cost_day(d, {"Cloud Run": "40.00"}) for d in days_of(local_day.replace(day=1), local_day.day)
    }
    costs = FirestoreCostStore()
    for cost in history.values():
        costs.put_day(day_to_doc(cost))
    costs.put_snapshot(local_day - timedelta(days=1), snapshot_doc(history, local_day - timedelta(days=1)))
    live = serve_capability("reports", env=mail_env(smtp))
    scheduler = {"X-CloudScheduler-ScheduleTime": five.isoformat(), "Content-Type": "application/json"}
    body = '{"period": "day", "time_zone": "America/New_York"}'
    first = requests.post(f"{live.url}/v1/reports/operations", data=body, headers=scheduler, timeout=180)
    assert first.status_code == 201, first.text
    sent = first.json()
    assert sent["id"] == f"operations-{local_day.isoformat()}"
    assert sent["period"]["kind"] == "day"
    assert sent["period"]["end"].startswith(five.strftime("%Y-%m-%dT%H:%M"))
    # The scheduler's retry, and a call without a body (the audience's period is the day): nothing more.
    retry = requests.post(f"{live.url}/v1/reports/operations", data=body, headers=scheduler, timeout=180)
    assert retry.status_code == 200
    assert retry.json()["mailed"] is False
    again = requests.post(
        f"{live.url}/v1/reports/operations?day={local_day.isoformat()}&time_zone=America/New_York",
        timeout=180,
    )
    assert again.status_code == 200
    assert again.json()["mailed"] is False
    assert len(smtp.inbox.messages) == 1
    received = smtp.inbox.messages[0]
    assert received.over_tls
    assert received.recipients == ["ops@ion.test"]
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Daily operations summary" in received.message["Subject"]
    assert "00:00 to 17:00 (America/New_York)" in text
    assert "Incidents opened: 2 incidents" in text
    assert "Targets missed: 1 incident missed a target" in text
    assert "P1 critical incident today-late (resolved)" in text
    assert "response target missed" in text
    assert "critical incident yesterday" not in text
    assert "== Alerts by severity" in text
    assert "No alert fired in this window." in text
    assert "Error budget used" in text
    assert f"Cost so far in {local_day - timedelta(days=1):%B}" in text
    assert "not " + local_day.isoformat() in text  # the snapshot of the day before, said
    assert "No incident on" not in text


def test_an_empty_day_says_so_plainly(fs, smtp, serve_capability) -> None:  # type: ignore[no-untyped-def]
    five = yesterday_at_five()
    live = serve_capability("reports", env=mail_env(smtp))
    answer = requests.post(
        f"{live.url}/v1/reports/operations",
        json={"period": "day", "time_zone": "America/New_York"},
        headers={"X-CloudScheduler-ScheduleTime": five.isoformat()},
        timeout=180,
    )
    assert answer.status_code == 201, answer.text
    text = smtp.inbox.messages[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    local_day = five.astimezone(NY).date().isoformat()
    assert f"No incident on {local_day}, and none open: nothing to measure." in text
    assert "Incidents opened: no incident" in text
    assert "MTTR" not in text
    assert "0.00%" not in text
    assert "the cost so far is unknown" in text


def test_a_day_not_started_is_refused(fs, serve_capability) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability("reports", env={"ION_REPORTS_OUTBOX": ""})
    tomorrow = (datetime.now(NY).date() + timedelta(days=2)).isoformat()
    answer = requests.post(f"{live.url}/v1/reports/operations?day={tomorrow}", timeout=60)
    assert answer.status_code == 422
    assert "has not started" in answer.text
    bad = requests.post(f"{live.url}/v1/reports/operations?day=2026-13-01", timeout=60)
    assert bad.status_code == 422
    assert "does not exist" in bad.text


def test_the_daily_summary_is_scheduled_at_five_pm_in_the_teams_zone() -> None:
    topology = load_topology()
    (name,) = [n for n, s in topology.schedules.items() if s.path == "/v1/reports/operations"]
    schedule = topology.schedules[name]
    assert schedule.cron == "0 17 * * *"
    assert schedule.time_zone == "America/New_York"
    assert schedule.body == {"period": "day", "time_zone": "America/New_York"}
    assert "ION_REPORTS_TO_OPERATIONS" in topology.functions["mail_reports"].settings_from


def test_the_day_so_far_by_hand(fs, smtp, serve_capability) -> None:  # type: ignore[no-untyped-def]
    """An operator runs the daily summary by hand (no scheduler header): the day so far, up to
    now, is mailed; it was a 422 saying the day "ends" at the moment of the request."""
    live = serve_capability("reports", env=mail_env(smtp))
    today = datetime.now(NY).date().isoformat()
    for url in (
        f"{live.url}/v1/reports/operations",
        f"{live.url}/v1/reports/operations?day={today}&time_zone=America/New_York&resend=true",
    ):
        answer = requests.post(url, timeout=180)
        assert answer.status_code in (200, 201), answer.text
        assert answer.json()["id"] == f"operations-{today}"
        assert answer.json()["period"]["kind"] == "day"
