"""Cloud Scheduler's headers come from whoever calls: every value is parsed safely. A bad
``X-CloudScheduler-ScheduleTime`` never answers 500, never stops a heartbeat being recorded, and
a handler that needs the time answers 400 naming the header."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from shared.heartbeats import parse_schedule_time, read_heartbeats, scheduled_job

HOSTILE_TIMES = [
    "",
    "garbage",
    "\x00\x01",
    "2026-13-01T00:00:00Z",
    "2026-03-02T08:00:00",  # no zone: which day is it?
    "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC
    "9999-12-31T23:59:59-01:00",  # after datetime.max in UTC
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-03-02T08:00:00+23:59",
    "2026-03-02T08:00:00Z" + "0" * 10_000,
]


@pytest.mark.parametrize("value", HOSTILE_TIMES)
def test_a_schedule_time_is_a_utc_time_this_century_or_none(value: str) -> None:
    parsed = parse_schedule_time(value)
    assert parsed is None or (parsed.tzinfo is UTC and 2000 <= parsed.year < 2100)
    assert parse_schedule_time("2026-03-02T09:00:00+01:00") == datetime(2026, 3, 2, 8, tzinfo=UTC)


@pytest.mark.parametrize("name", ["", "x" * 10_000, "\x00", "évaluate", "../../etc", "evaluate-alerts\r\n"])
def test_a_job_name_not_in_the_topology_is_no_job(name: str) -> None:
    assert scheduled_job("alerts", name) is None
    assert scheduled_job("alerts", "evaluate-alerts") == "evaluate-alerts"


@pytest.mark.emulators
@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2026-03-02T08:00:00"]
)
def test_a_bad_schedule_time_still_records_the_heartbeat_without_it(fs, value: str) -> None:  # type: ignore[no-untyped-def]
    import flask

    from functions.alerts.main import handle

    app = flask.Flask("t")
    headers = {"X-CloudScheduler-JobName": "evaluate-alerts", "X-CloudScheduler-ScheduleTime": value}
    with app.test_request_context("/", method="POST", headers=headers):
        assert handle(flask.request).status_code == 200
    beat = read_heartbeats()["evaluate-alerts"]
    assert beat.scheduled_for is None


@pytest.mark.emulators
def test_handlers_that_use_the_schedule_time_answer_400_for_a_bad_one(fs, serve_capability) -> None:  # type: ignore[no-untyped-def]
    fanout = serve_capability("fanout")
    reports = serve_capability("reports")
    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-03-02T08:00:00", "soon"):
        headers = {"X-CloudScheduler-ScheduleTime": value, "Content-Type": "application/json"}
        digest = requests.post(f"{fanout.url}/v1/digest", headers=headers, timeout=30)
        report = requests.post(f"{reports.url}/v1/reports/leadership", data="{}", headers=headers, timeout=30)
        for response in (digest, report):
            assert response.status_code == 400, (value, response.status_code, response.text)
            assert "X-CloudScheduler-ScheduleTime" in response.json()["detail"]
    assert fs.collection("report_runs").limit(1).get() == []
    assert fs.collection("fanout_digests").limit(1).get() == []


def test_a_job_is_only_its_own_path() -> None:
    from shared.topology import topology

    path = topology().schedules["evaluate-alerts"].path
    assert scheduled_job("alerts", "evaluate-alerts", path) == "evaluate-alerts"
    assert scheduled_job("alerts", "evaluate-alerts", path.rstrip("/") + "/") == "evaluate-alerts"
    assert scheduled_job("alerts", "evaluate-alerts", "/v1/rules") is None
