"""Rows that land late, or are billed in a later invoice month, through the real BigQuery client
and the stand-in: what the month-end forecast and the anomaly notices make of them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from devtools.bigquery_standin import StandIn, Table, serve
from functions.cost.store import MemoryCostStore
from shared.messages import AlertTransition
from tests.cost.helpers import TABLE
from tests.cost.test_real_billing import raw, service


@pytest.fixture
def standin() -> Iterator[StandIn]:
    from devtools.processes import free_port

    # The stand-in serves rows exported by its clock; each test moves it with the daily runs.
    server = StandIn("billing-admin", Table(TABLE, []), clock=lambda: server.now)  # type: ignore[attr-defined]
    server.now = datetime(2027, 1, 1, tzinfo=UTC)  # type: ignore[attr-defined]
    httpd = serve(server, free_port())
    server.endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    yield server
    httpd.shutdown()
    httpd.server_close()


def daily(first: date, last: date, cost: str) -> list[dict[str, Any]]:
    """Cloud Run at ``cost`` each Pacific day (one row at noon Pacific)."""
    days = (last - first).days + 1
    return [raw(f"{first + timedelta(days=i)}T20:00:00Z", cost) for i in range(days)]


def test_usage_billed_this_month_for_last_months_days_is_in_the_forecast(standin: StandIn) -> None:
    """A $500 correction for November 30 billed on December's invoice made December's month to
    date $800 on the 3rd, while the month-end forecast stayed $3,100 as if it did not exist: the
    forecast (and its budget share) counted December's usage days only."""
    usage = daily(date(2026, 10, 1), date(2026, 12, 3), "100")
    run_at = datetime(2026, 12, 4, 17, tzinfo=UTC)
    standin.table = Table(TABLE, usage)
    without = service(standin, run_at).run(date(2026, 12, 3))
    standin.table = Table(TABLE, [*usage, raw("2026-11-30T20:00:00Z", "500", invoice="202612")])
    snap = service(standin, run_at).run(date(2026, 12, 3))
    assert snap["month_to_date"]["total"] == without["month_to_date"]["total"] + 500 == 800
    forecast, before = snap["forecast_month_end"], without["forecast_month_end"]
    assert forecast["total"] == pytest.approx(before["total"] + 500, abs=0.01)
    assert forecast["by_service"]["Cloud Run"] == pytest.approx(
        before["by_service"]["Cloud Run"] + 500, abs=0.01
    )
    assert forecast["low"] >= snap["month_to_date"]["total"]
    assert snap["budget"]["forecast_pct"] == pytest.approx(forecast["total"] / 3000 * 100, abs=0.01)
    # A November snapshot keeps its own invoice month: the correction is not November's.
    november = service(standin, datetime(2026, 12, 1, 17, tzinfo=UTC)).run(date(2026, 11, 30))
    assert november["month_to_date"]["total"] == 3000


def test_a_spike_that_lands_after_its_day_settled_is_announced_once(standin: StandIn) -> None:
    """Rows of November 15 that landed on the 20th made it a $500 day against $100 the same
    weekday for weeks: the run restated it (late_restatements) and listed the anomaly, but never
    announced it, since only the last three days' anomalies were announced."""
    usage = daily(date(2026, 9, 1), date(2026, 11, 19), "100")
    late = raw("2026-11-15T20:00:00Z", "400")
    late["export_time"] = "2026-11-20T10:00:00+00:00"
    standin.table = Table(TABLE, [*usage, late])
    published: list[AlertTransition] = []
    run = service(standin, datetime(2026, 11, 19, 17, tzinfo=UTC), MemoryCostStore())
    run.publish = published.append

    def day_run(as_of: date) -> dict[str, Any]:
        now = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=17)
        run.now = lambda: now
        standin.now = now  # type: ignore[attr-defined]
        return run.run(as_of)

    assert day_run(date(2026, 11, 18))["notices"]["anomalies"] == []
    second = day_run(date(2026, 11, 19))
    assert [r["date"] for r in second["late_restatements"]] == ["2026-11-15"]
    assert [(a["date"], a["service"]) for a in second["anomalies"]] == [("2026-11-15", "Cloud Run")]
    assert second["notices"]["anomalies"] == ["anomaly/2026-11-15/Cloud Run"]
    anomaly_notices = [n for n in published if n.labels["notice"] == "cost-anomaly"]
    assert [n.labels["date"] for n in anomaly_notices] == ["2026-11-15"]
    # The next day's run restates nothing late and announces nothing again.
    assert day_run(date(2026, 11, 20))["notices"]["anomalies"] == []
    assert len([n for n in published if n.labels["notice"] == "cost-anomaly"]) == 1


def test_a_day_past_the_restated_ones_is_settled_though_no_row_changed_it(standin: StandIn) -> None:
    """A day was stored `settled: false` while still restated and never written again unless a
    late row changed it: after a week of daily runs GET /v1/cost called every quiet day unsettled."""
    standin.table = Table(TABLE, daily(date(2026, 10, 1), date(2026, 11, 18), "10"))
    store = MemoryCostStore()
    run = service(standin, datetime(2026, 11, 11, 17, tzinfo=UTC), store)
    for day in range(10, 19):
        run.now = lambda day=day: datetime(2026, 11, day + 1, 17, tzinfo=UTC)  # type: ignore[misc]
        last = run.run(date(2026, 11, day))
    days = store.days(date(2026, 11, 1), date(2026, 11, 18))
    assert [d.day for d, doc in sorted(days.items()) if not doc["settled"]] == [16, 17, 18]
    assert {doc["revision"] for doc in days.values()} == {1}  # marked settled, not restated
    assert last["restated"] == ["2026-11-16", "2026-11-17", "2026-11-18"]
    assert last["late_restatements"] == []


def spiked_run(standin: StandIn) -> tuple[Any, Any]:
    """Daily runs over an export where November 15's spike lands on the 20th."""
    late = raw("2026-11-15T20:00:00Z", "400")
    late["export_time"] = "2026-11-20T10:00:00+00:00"
    standin.table = Table(TABLE, [*daily(date(2026, 9, 1), date(2026, 11, 21), "100"), late])
    run = service(standin, datetime(2026, 11, 19, 17, tzinfo=UTC), MemoryCostStore())

    def day_run(as_of: date) -> dict[str, Any]:
        now = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=17)
        run.now = lambda: now
        standin.now = now  # type: ignore[attr-defined]
        return run.run(as_of)

    return run, day_run


def test_a_late_days_anomaly_whose_publish_failed_is_published_by_the_next_run(standin: StandIn) -> None:
    """The late day is judged in the run its rows land; if publishing failed there, the next run
    (its figures unchanged by then, so not late again) must still publish the claimed notice."""
    run, day_run = spiked_run(standin)
    day_run(date(2026, 11, 18))
    published: list[AlertTransition] = []

    def failing(notice: AlertTransition) -> None:
        if notice.labels["notice"] == "cost-anomaly":
            raise ConnectionError("pubsub unavailable")
        published.append(notice)

    run.publish = failing
    with pytest.raises(ConnectionError):
        day_run(date(2026, 11, 19))
    run.publish = published.append
    after = day_run(date(2026, 11, 20))
    assert after["late_restatements"] == []
    assert after["notices"]["anomalies"] == ["anomaly/2026-11-15/Cloud Run"]
    assert [n.labels["date"] for n in published if n.labels["notice"] == "cost-anomaly"] == ["2026-11-15"]


def test_running_a_day_again_keeps_the_late_restatements_it_found(standin: StandIn) -> None:
    """A rerun of the same day (a scheduler retry, or finance asking again) found the late day
    unchanged since the first run and stored the snapshot with `late_restatements: []`: the
    only record that November 15 moved after it settled was gone."""
    _, day_run = spiked_run(standin)
    day_run(date(2026, 11, 18))
    first = day_run(date(2026, 11, 19))
    assert [r["date"] for r in first["late_restatements"]] == ["2026-11-15"]
    again = day_run(date(2026, 11, 19))
    assert again["late_restatements"] == first["late_restatements"]
    assert again["notices"]["anomalies"] == []  # announced once
