"""Weekly reports end to end: built from the panel definitions on the emulator, mailed over
STARTTLS to a real SMTP server (aiosmtpd), exactly once per week and audience under retries and
concurrent calls, archived."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from devtools.metric_history import write_history
from devtools.processes import free_port
from functions.cost.store import FirestoreCostStore, day_to_doc
from functions.health.store import RUNS_COLLECTION, FirestoreHealthStore
from functions.reports.audiences import load_audiences
from functions.reports.build import PanelBuilder
from functions.reports.documents import FirestoreDocumentSource
from functions.reports.panels import load_catalog
from functions.reports.period import last_full_week
from functions.reports.report import build_report
from functions.reports.settings import get_reports_settings
from functions.reports.source import FirestoreAlertSource, StoreMetricSource
from functions.reports.views import format_value
from tests.reports.business_docs import cost_day, days_of, health_run_doc, snapshot_doc
from tests.reports.smtp import SmtpServer
from tests.reports.traffic import Expected, one_minute

NY = "America/New_York"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path, free_port())
    yield server
    server.stop()


def mail_env(smtp: SmtpServer, **extra: str) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "ION_REPORTS_SMTP_CA_FILE": str(smtp.cert),
        "ION_REPORTS_FROM": "reports@ion.test",
        "ION_REPORTS_TO_ENGINEERING": "eng@ion.test, sre@ion.test",
        "ION_REPORTS_TO_LEADERSHIP": "lead@ion.test",
        "ION_REPORTS_TO_SUPPORT": "support@ion.test",
        **extra,
    }


def seed_two_weeks(every_minutes: int = 240) -> tuple[Expected, Expected]:
    """The last full week (one error every third sample) and the week before (none), sparse."""
    week = last_full_week(datetime.now(UTC), NY)
    current, previous = Expected(), Expected()

    def minute_of(history, minute: datetime) -> None:  # type: ignore[no-untyped-def]
        if minute < week.start:
            one_minute(history, minute, previous, error=False)
        else:
            index = int((minute - week.start).total_seconds() // 60 // every_minutes)
            one_minute(history, minute, current, error=index % 3 == 0)

    write_history(week.previous_start, week.end, minute_of, every=every_minutes)
    return current, previous


def seed_cost_and_health() -> None:
    """The cost and health capabilities' daily documents for both weeks, stored by their own code:
    $50 a day this week against $40 the week before; 3 of 4 customers healthy, then 2."""
    week = last_full_week(datetime.now(UTC), NY)
    first = week.previous_start.astimezone(ZoneInfo(NY)).date()
    days = days_of(first, 14)
    history = {d: cost_day(d, {"Cloud Run": "40.00" if i < 7 else "50.00"}) for i, d in enumerate(days)}
    costs = FirestoreCostStore()
    for day in history.values():
        costs.put_day(day_to_doc(day))
    for last in (days[6], days[13]):
        costs.put_snapshot(last, snapshot_doc(history, last))
    health = FirestoreHealthStore()
    health.put_doc(
        RUNS_COLLECTION, days[6].isoformat(), health_run_doc(days[6], {"healthy": 3, "at_risk": 1})
    )
    health.put_doc(
        RUNS_COLLECTION,
        days[13].isoformat(),
        health_run_doc(days[13], {"healthy": 2, "at_risk": 1, "churn_risk": 1}),
    )


def test_report_mailed_with_text_html_and_inline_charts(fs, smtp, serve_capability) -> None:
    current, _ = seed_two_weeks()
    seed_cost_and_health()
    live = serve_capability("reports", env=mail_env(smtp))
    answer = requests.post(f"{live.url}/v1/reports/engineering", timeout=120)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["mailed"] is True
    assert body["delivery"] == "smtp"
    assert body["period"]["label"] == last_full_week(datetime.now(UTC), NY).label
    assert len(smtp.inbox.messages) == 1
    received = smtp.inbox.messages[0]
    assert received.over_tls
    assert received.recipients == ["eng@ion.test", "sre@ion.test"]
    assert received.sender == "reports@ion.test"
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.get_payload()  # type: ignore[misc]
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    html = html_part.get_content()
    assert images
    for image in images:
        assert image.get_content_type() == "image/png"
        assert image.get_content().startswith(b"\x89PNG")
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in html
    # Readable with images off: every image has alt text and the figures are in tables.
    for tag in re.findall(r"<img [^>]*>", html):
        assert re.search(r'alt="[^"]{20,}"', tag), tag
    availability = 1 - current.errors / current.requests
    assert f"<b>{format_value(availability, 'percent')}</b>" in html
    assert f"Availability: {format_value(availability, 'percent')}" in text_part.get_content()
    assert "<style" not in html
    assert "<script" not in html
    # Cost and customer health are read from those capabilities' documents.
    assert "Cost this week<br>" in html
    assert "<b>$350.00</b>" in html
    assert "$280.00" in html
    assert "+25.0%" in html
    assert "Customer health (4 customers scored" in html
    assert "Churn risk: 1 customer (25.00%" in text_part.get_content()
    assert "No cost recorded" not in html
    assert "not read" not in html
    assert "pts" in html  # week-over-week change of a percentage
    size = len(html.encode()) + sum(len(i.get_content()) for i in images)
    assert size < 300_000
    assert body["size_bytes"] < 300_000


def test_mailed_exactly_once_under_concurrent_calls_and_retries(fs, smtp, serve_capability) -> None:
    live = serve_capability("reports", env=mail_env(smtp))
    scheduler = {
        "X-CloudScheduler-ScheduleTime": datetime.now(UTC).isoformat(),
        "Content-Type": "application/json",
    }

    def call(_: int) -> requests.Response:
        return requests.post(
            f"{live.url}/v1/reports/leadership",
            data='{"time_zone": "America/New_York"}',
            headers=scheduler,
            timeout=120,
        )

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(call, range(6)))
    # A call whose claim stayed contended through its transaction's retries is a 503 to retry (a
    # loaded Firestore emulator times such locks out); the scheduler retries it, as here.
    for _ in range(5):
        unavailable = [a for a in answers if a.status_code == 503]
        if not unavailable:
            break
        assert all(a.headers["Retry-After"] for a in unavailable)
        answers = [a for a in answers if a.status_code != 503] + [call(0) for _ in unavailable]
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 1, [a.text for a in answers]
    assert set(codes) <= {200, 201, 409}
    retry = call(0)  # a scheduler retry after the mail went out
    assert retry.status_code == 200
    assert retry.json()["mailed"] is False
    assert len(smtp.inbox.messages) == 1
    again = requests.post(f"{live.url}/v1/reports/leadership?resend=true", timeout=120)
    assert again.status_code == 201
    assert len(smtp.inbox.messages) == 2
    first, second = (r.message for r in smtp.inbox.messages)
    assert first["Message-ID"] != second["Message-ID"]
    assert first["Subject"] == second["Subject"]


def test_an_unverified_certificate_sends_nothing_and_a_retry_can_still_send(
    fs, smtp, serve_capability
) -> None:
    env = mail_env(smtp)
    env.pop("ION_REPORTS_SMTP_CA_FILE")
    untrusting = serve_capability("reports", env=env)
    answer = requests.post(f"{untrusting.url}/v1/reports/support", timeout=120)
    assert answer.status_code == 502
    assert "certificate" in answer.json()["detail"].lower()
    assert smtp.inbox.messages == []
    trusting = serve_capability("reports", env=mail_env(smtp))
    retried = requests.post(f"{trusting.url}/v1/reports/support", timeout=120)
    assert retried.status_code == 201, retried.text
    assert len(smtp.inbox.messages) == 1


def test_an_empty_week_is_mailed_and_says_so(fs, smtp, serve_capability) -> None:
    live = serve_capability("reports", env=mail_env(smtp))
    answer = requests.post(f"{live.url}/v1/reports/support", timeout=120)
    assert answer.status_code == 201
    assert answer.json()["empty"] is True
    text = smtp.inbox.messages[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "No metric data was recorded" in text
    assert "no data" in text
    assert "No customer health run in" in text  # the support report's health part, said not zeroed


def test_archive_lists_and_serves_what_was_mailed(fs, smtp, serve_capability) -> None:
    live = serve_capability("reports", env=mail_env(smtp))
    sent = requests.post(f"{live.url}/v1/reports/engineering", timeout=120).json()
    listed = requests.get(f"{live.url}/v1/reports", timeout=30).json()["reports"]
    assert [r["id"] for r in listed] == [sent["id"]]
    assert listed[0]["state"] == "sent"
    page = requests.get(f"{live.url}{sent['url']}", timeout=30)
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Engineering weekly report" in page.text
    assert "cid:" not in page.text
    missing = requests.get(f"{live.url}/v1/reports/engineering-1999-W01", timeout=30)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/v1/reports/marketing", 404, "allowed"),
        ("/v1/reports/engineering?week=2026-46", 422, "ISO week"),
        ("/v1/reports/engineering?week=2099-W01", 422, "not over yet"),
        ("/v1/reports/engineering?time_zone=Mars/Olympus", 422, "IANA"),
        # An area, not a zone: a folder in the tzdata package, where ZoneInfo raises IsADirectoryError.
        ("/v1/reports/engineering?time_zone=Pacific", 422, "IANA"),
    ],
)
def test_bad_report_requests(fs, serve_capability, path: str, status: int, needle: str) -> None:
    live = serve_capability("reports", env={"ION_REPORTS_OUTBOX": ""})
    answer = requests.post(f"{live.url}{path}", timeout=60)
    assert answer.status_code == status
    assert needle in answer.text


def test_report_figures_are_the_dashboard_panels_figures(fs) -> None:
    seed_two_weeks(every_minutes=360)
    catalog = load_catalog()
    settings = get_reports_settings()
    audiences = load_audiences(settings.audiences_file, settings.dashboards_file)
    week = last_full_week(datetime.now(UTC), NY)
    now = datetime.now(UTC)
    report = build_report(
        audiences.audiences["engineering"],
        week,
        catalog,
        StoreMetricSource(),
        FirestoreAlertSource(),
        documents=FirestoreDocumentSource(),
        now=now,
    )
    builder = PanelBuilder(
        StoreMetricSource(), FirestoreAlertSource(), start=week.start, end=week.end, step=3600
    )
    checked = 0
    for section in report.sections:
        for figure in section.figures:
            if figure.title == "Error budget used" or figure.ref.split(".")[0] in ("cost", "health"):
                continue
            _, panel = catalog.panel(figure.ref)
            assert builder.build(panel).value == figure.value, figure.ref
            checked += 1
    assert checked >= 10
    assert report.empty is False


def test_audiences_name_only_existing_panels() -> None:
    from functions.reports.audiences import parse_audiences

    catalog = load_catalog()
    bad = {
        "audiences": {
            "x": {"title": "X", "sections": [{"id": "s", "title": "S", "figures": ["overview.nope"]}]}
        }
    }
    with pytest.raises(ValueError, match="overview has no panel 'nope'"):
        parse_audiences(bad, catalog)
