"""Calendar edges of the cost API: its days are the billing account's (Pacific), so "the last N days"
counts back from today there, and a day is a date (YYYY-MM-DD), never a time whose offset would
name another day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import flask
import pytest

from functions.cost import main as cost_main
from functions.cost.store import FirestoreCostStore
from shared.clock import FrozenClock, set_clock

pytestmark = [pytest.mark.emulators, pytest.mark.usefixtures("fresh_cost_clients", "emulator_answers")]


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    # 21:30 on 2026-11-01 in Los Angeles (the 25-hour day summer time ends), 05:30 UTC on 2 November.
    frozen = FrozenClock(datetime(2026, 11, 2, 5, 30, tzinfo=UTC))
    previous = set_clock(frozen)
    yield frozen
    set_clock(previous)


def call(method: str, path: str, **kwargs: Any) -> flask.Response:
    app = flask.Flask("cost-calendar")
    with app.test_request_context(path, method=method, **kwargs):
        return cost_main.handle(flask.request)


def test_anomalies_of_the_last_day_count_back_from_today_in_pacific(fs, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    store = FirestoreCostStore(client=fs)
    # The run of 09:00 on 1 November (Pacific) snapshots 31 October and announces its anomaly.
    store.claim_event("anomaly:2026-10-31:Cloud Run", {"kind": "anomaly", "date": "2026-10-31"})
    answer = call("GET", "/v1/cost/anomalies?days=1")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["since"] == "2026-10-31"
    assert [e["date"] for e in body["anomalies"]] == ["2026-10-31"]


@pytest.mark.parametrize(
    "day", ["2026-11-01T00:00:00+09:00", "2026-11-01T00:00:00Z", "1793491200", "20261101"]
)
def test_a_day_is_a_date_never_a_time_with_an_offset(fs, clock: FrozenClock, day: str) -> None:  # type: ignore[no-untyped-def]
    # Midnight in Tokyo on 1 November is 08:00 on 31 October in Los Angeles: which day is meant?
    encoded = day.replace("+", "%2B")
    for answer in (
        call("GET", f"/v1/cost?date={encoded}"),
        call("GET", f"/v1/cost/forecast?date={encoded}"),
        call("POST", "/v1/cost/snapshot", json={"date": day}),
    ):
        assert answer.status_code == 422, (day, answer.get_data(as_text=True))
        body = answer.get_json()
        assert [e["field"] for e in body["errors"]] == ["date"], body
        assert "YYYY-MM-DD" in answer.get_data(as_text=True)
    # An empty parameter is still an absent one: the latest snapshot (none yet).
    assert call("GET", "/v1/cost?date=").status_code == 404
