"""The scheduled jobs' dead man's switch: heartbeats written by the jobs' own functions, the Cloud
Scheduler API (real client, local stand-in) and the heartbeat rule through the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from devtools.processes import free_port
from devtools.scheduler import LocalScheduler, SchedulerApiStandIn
from functions.alerts.engine import Evaluator
from functions.alerts.jobs import (
    CloudSchedulerJobs,
    JobWatch,
    SchedulerJob,
    interval,
    job_statuses,
    observe_jobs,
)
from functions.alerts.source import ReplaySource
from functions.alerts.state_store import MemoryStateStore
from shared.clock import FrozenClock, set_clock
from shared.heartbeats import Heartbeat, read_heartbeats
from shared.topology import Schedule
from tests.alerts.helpers import rule

NOW = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)
EVERY_MINUTE = Schedule(function="evaluate_alerts", cron="* * * * *")
MONDAY_9_NY = Schedule(function="mail_reports", cron="0 9 * * 1", time_zone="America/New_York")


def heartbeat_rule(factor: float = 2) -> object:
    return rule(name="scheduled-job-overdue", kind="heartbeat", factor=factor)


def beat(job: str, at: datetime) -> Heartbeat:
    return Heartbeat(job=job, capability="alerts", last_success_at=at, duration_seconds=0.2, status=200)


def test_interval_follows_the_cron_in_its_own_time_zone() -> None:
    assert interval(EVERY_MINUTE, NOW) == timedelta(minutes=1)
    assert interval(MONDAY_9_NY, NOW) == timedelta(days=7)
    # New York moved its clocks forward on 2026-03-08: that week was an hour short.
    assert interval(MONDAY_9_NY, datetime(2026, 3, 5, tzinfo=UTC)) == timedelta(days=7, hours=-1)


def test_overdue_after_factor_intervals_without_success() -> None:
    schedules = {"tick": EVERY_MINUTE}
    on_time = job_statuses(schedules, {"tick": beat("tick", NOW - timedelta(seconds=90))}, {}, {}, NOW)
    late = job_statuses(schedules, {"tick": beat("tick", NOW - timedelta(seconds=150))}, {}, {}, NOW)
    assert on_time[0].overdue_ratio == pytest.approx(1.5)
    assert [o.active for o in observe_jobs(heartbeat_rule(), on_time)] == [False]
    assert [o.active for o in observe_jobs(heartbeat_rule(), late)] == [True]
    assert observe_jobs(heartbeat_rule(), late)[0].labels == {"job": "tick", "function": "evaluate_alerts"}


def test_a_job_never_seen_counts_from_when_it_was_first_watched() -> None:
    schedules = {"weekly": MONDAY_9_NY}
    fresh = job_statuses(schedules, {}, {}, {"weekly": NOW - timedelta(days=3)}, NOW)
    forgotten = job_statuses(schedules, {}, {}, {"weekly": NOW - timedelta(days=15)}, NOW)
    assert fresh[0].last_success_at is None
    assert [o.active for o in observe_jobs(heartbeat_rule(), fresh)] == [False]
    assert [o.active for o in observe_jobs(heartbeat_rule(), forgotten)] == [True]


def test_the_scheduler_apis_successful_attempt_counts_and_a_failed_one_does_not() -> None:
    schedules = {"tick": EVERY_MINUTE}
    old = {"tick": beat("tick", NOW - timedelta(minutes=10))}
    ok = {"tick": SchedulerJob("tick", "ENABLED", NOW - timedelta(seconds=20), True)}
    failed = {"tick": SchedulerJob("tick", "ENABLED", NOW - timedelta(seconds=20), False, "HTTP 503")}
    assert job_statuses(schedules, old, ok, {}, NOW)[0].last_success_at == NOW - timedelta(seconds=20)
    assert job_statuses(schedules, old, failed, {}, NOW)[0].last_success_at == NOW - timedelta(minutes=10)


class _Jobs:
    def __init__(self, statuses_by_time: dict[datetime, list[object]]) -> None:
        self.statuses_by_time = statuses_by_time

    def observe(self, rule_: object, now: datetime) -> list[object]:
        return observe_jobs(rule_, self.statuses_by_time[now])  # type: ignore[arg-type]


def test_the_rule_fires_once_and_resolves_through_the_state_machine() -> None:
    schedules = {"tick": EVERY_MINUTE}
    later = NOW + timedelta(minutes=1)
    stuck = job_statuses(schedules, {"tick": beat("tick", NOW - timedelta(minutes=5))}, {}, {}, NOW)
    stuck_later = job_statuses(schedules, {"tick": beat("tick", NOW - timedelta(minutes=5))}, {}, {}, later)
    back = NOW + timedelta(minutes=2)
    recovered = job_statuses(schedules, {"tick": beat("tick", back)}, {}, {}, back)
    evaluator = Evaluator(
        ReplaySource(), MemoryStateStore(), jobs=_Jobs({NOW: stuck, later: stuck_later, back: recovered})
    )
    fired = evaluator.run([heartbeat_rule()], NOW).transitions
    assert [(t.state, t.labels["job"], t.severity) for t in fired] == [("firing", "tick", "high")]
    assert evaluator.run([heartbeat_rule()], later).transitions == []
    assert [t.state for t in evaluator.run([heartbeat_rule()], back).transitions] == ["resolved"]


def test_without_jobs_the_rule_observes_nothing() -> None:
    assert Evaluator(ReplaySource(), MemoryStateStore()).run([heartbeat_rule()], NOW).transitions == []


def test_heartbeat_rule_reads_no_metric_and_refuses_a_factor_below_one() -> None:
    assert heartbeat_rule().metrics() == set()
    with pytest.raises(ValueError, match="factor"):
        heartbeat_rule(factor=0.5)


@pytest.fixture
def scheduler_api():  # type: ignore[no-untyped-def]
    schedules = {"evaluate-alerts": EVERY_MINUTE, "weekly-report": MONDAY_9_NY}
    scheduler = LocalScheduler(schedules, lambda fn: "http://127.0.0.1:1", lambda _line: None)
    standin = SchedulerApiStandIn(scheduler, "ion-ops-test", "us-central1", free_port()).start()
    yield scheduler, standin
    standin.stop()


def test_the_real_client_reads_state_and_last_attempts_from_the_standin(scheduler_api) -> None:  # type: ignore[no-untyped-def]
    from devtools.scheduler import Attempt

    scheduler, standin = scheduler_api
    scheduler.last_attempts["evaluate-alerts"] = Attempt(NOW, 200)
    scheduler.last_attempts["weekly-report"] = Attempt(NOW - timedelta(days=1), 503)
    scheduler.paused.add("weekly-report")
    jobs = CloudSchedulerJobs("ion-ops-test", "us-central1", standin.url).jobs()
    assert jobs["evaluate-alerts"] == SchedulerJob("evaluate-alerts", "ENABLED", NOW, True, "")
    weekly = jobs["weekly-report"]
    assert weekly.state == "PAUSED"
    assert weekly.last_attempt_ok is False
    assert weekly.message == "HTTP 503"
    assert standin.requests == [
        "/v1/projects/ion-ops-test/locations/us-central1/jobs?%24alt=json%3Benum-encoding%3Dint"
    ]


def test_the_standin_refuses_what_the_real_api_refuses(scheduler_api) -> None:  # type: ignore[no-untyped-def]
    from google.api_core.exceptions import Forbidden

    _scheduler, standin = scheduler_api
    with pytest.raises(Forbidden):
        CloudSchedulerJobs("another-project", "us-central1", standin.url).jobs()
    assert (
        requests.get(
            f"{standin.url}/v1/projects/ion-ops-test/locations/us-central1/jobs?filter=x", timeout=5
        ).status_code
        == 400
    )
    assert (
        requests.get(
            f"{standin.url}/v1/projects/ion-ops-test/locations/us-central1/jobs/nope", timeout=5
        ).status_code
        == 404
    )
    assert (
        requests.post(
            f"{standin.url}/v1/projects/ion-ops-test/locations/us-central1/jobs", timeout=5
        ).status_code
        == 405
    )


@pytest.mark.emulators
def test_a_scheduled_success_writes_the_heartbeat_and_nothing_else_does(fs) -> None:  # type: ignore[no-untyped-def]
    from functions.alerts.main import handle

    set_clock(FrozenClock(NOW))
    app = __import__("flask").Flask("t")

    def call(path: str, method: str = "GET", **headers: str) -> int:
        with app.test_request_context(path, method=method, headers=headers):
            from flask import request

            return handle(request).status_code

    # Its own path (the evaluation, POST /) writes the heartbeat; a success elsewhere naming the
    # job does not: an invoker cannot keep a dead job looking alive.
    assert call("/v1/rules", **{"X-CloudScheduler-JobName": "evaluate-alerts"}) == 200
    assert read_heartbeats() == {}
    assert call("/", method="POST", **{"X-CloudScheduler-JobName": "evaluate-alerts"}) == 200
    assert call("/v1/nothing", **{"X-CloudScheduler-JobName": "ingestion-collect"}) == 404
    assert (
        call("/v1/rules", **{"X-CloudScheduler-JobName": "ingestion-collect"}) == 200
    )  # not this capability's
    assert call("/v1/rules", **{"X-CloudScheduler-JobName": "made-up"}) == 200
    beats = read_heartbeats()
    assert list(beats) == ["evaluate-alerts"]
    assert beats["evaluate-alerts"].last_success_at == NOW
    assert beats["evaluate-alerts"].capability == "alerts"


@pytest.mark.emulators
def test_schedules_api_shows_every_job_and_the_overdue_one(fs, scheduler_api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from devtools.scheduler import Attempt
    from functions.alerts import main
    from shared.heartbeats import record_success
    from shared.topology import topology

    scheduler, standin = scheduler_api
    scheduler.schedules = dict(topology().schedules)
    scheduler.last_attempts["ingestion-collect"] = Attempt(NOW - timedelta(seconds=30), 200)
    monkeypatch.setattr(
        main, "job_watch", lambda: JobWatch(CloudSchedulerJobs("ion-ops-test", "us-central1", standin.url))
    )
    record_success(beat("evaluate-alerts", NOW - timedelta(minutes=10)))
    first_watch = NOW - timedelta(days=30)
    fs.collection("alert_watchdog").document("jobs").set(dict.fromkeys(scheduler.schedules, first_watch))
    set_clock(FrozenClock(NOW))
    body = main.list_schedules(None)  # type: ignore[arg-type]
    jobs = {j["job"]: j for j in body["jobs"]}
    assert set(jobs) == set(topology().schedules)
    assert body["scheduler_api"] == "ok"
    assert jobs["evaluate-alerts"]["overdue"] is True
    assert jobs["evaluate-alerts"]["intervals_since_success"] == pytest.approx(10.0)
    assert jobs["ingestion-collect"]["overdue"] is False
    assert jobs["ingestion-collect"]["scheduler"]["last_attempt_ok"] is True
    assert jobs["fanout-digest"]["overdue"] is True  # never succeeded in 30 days of a daily job


WEEKDAYS_9_PARIS = Schedule(function="mail_reports", cron="0 9 * * 1-5", time_zone="Europe/Paris")


def test_a_weekday_jobs_weekend_is_one_interval_not_three() -> None:
    # Friday's run succeeded at 09:02 Paris (08:02 UTC); Monday's has just been started at 09:00.
    schedules = {"weekdays": WEEKDAYS_9_PARIS}
    friday = {"weekdays": beat("weekdays", datetime(2026, 3, 13, 8, 2, tzinfo=UTC))}
    monday_morning = job_statuses(schedules, friday, {}, {}, datetime(2026, 3, 16, 8, 1, tzinfo=UTC))
    assert monday_morning[0].overdue_ratio == pytest.approx(1.0, abs=0.01)
    assert [o.active for o in observe_jobs(heartbeat_rule(), monday_morning)] == [False]
    # Monday's run never succeeded: by Tuesday's run two runs are missed, as for a daily job.
    tuesday = job_statuses(schedules, friday, {}, {}, datetime(2026, 3, 17, 8, 5, tzinfo=UTC))
    assert [o.active for o in observe_jobs(heartbeat_rule(), tuesday)] == [True]


def test_a_monthly_job_that_missed_two_runs_is_overdue_whatever_the_months_lengths() -> None:
    # January's run succeeded; February's failed; March's started 5 minutes ago and failed too.
    schedules = {"monthly": Schedule(function="mail_reports", cron="0 10 1 * *")}
    january = {"monthly": beat("monthly", datetime(2026, 1, 1, 10, 1, tzinfo=UTC))}
    march = job_statuses(schedules, january, {}, {}, datetime(2026, 3, 1, 10, 5, tzinfo=UTC))
    assert march[0].overdue_ratio == pytest.approx(2.0, abs=0.01)
