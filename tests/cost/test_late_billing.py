"""Rows that land late, or are billed in a later invoice month, through the real BigQuery client
and the stand-in: what the month-end forecast and the anomaly notices make of them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from devtools.bigquery_standin import StandIn, Table, serve
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
