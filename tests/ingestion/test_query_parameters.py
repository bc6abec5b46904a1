"""What dashboards and alert rules send to ``GET /v1/query`` and ``run_query``: repeated
parameters and steps the rollups cannot be cut into are answered for what was asked, or refused
naming the parameter, never answered for part of the question."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery, QueryError
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import counter, gauge, request

pytestmark = pytest.mark.emulators
PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=10)
WINDOW = "start=2026-03-02T11:00:00Z&end=2026-03-02T12:10:00Z"


def post(client, req):  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=req.SerializeToString(), content_type=PB)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_by_given_twice_groups_by_both_labels(client, store) -> None:  # type: ignore[no-untyped-def]
    # URLSearchParams and most HTTP clients send a list as a repeated parameter: the answer was
    # grouped by the first label alone, silently.
    post(client, request([gauge("g", [(T0, 1.0, {})])], region="us-central1"))
    post(client, request([gauge("g", [(T0, 1.0, {})])], region="europe-west1"))
    repeated = client.get(f"/v1/query?metric=g&agg=count&{WINDOW}&by=service&by=region")
    assert repeated.status_code == 200, repeated.get_data(as_text=True)
    comma = client.get(f"/v1/query?metric=g&agg=count&{WINDOW}&by=service,region")
    assert repeated.get_json() == comma.get_json()
    assert sorted(s["labels"]["region"] for s in repeated.get_json()["series"]) == [
        "europe-west1",
        "us-central1",
    ]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("label.region=us-central1&label.region=europe-west1", "label.region"),
        ("agg=sum", "agg"),
        ("step=60&step=300", "step"),
    ],
)
def test_any_other_parameter_given_twice_is_a_422_naming_it(client, store, extra, field) -> None:  # type: ignore[no-untyped-def]
    post(client, request([gauge("g", [(T0, 1.0, {})])]))
    response = client.get(f"/v1/query?metric=g&agg=count&{WINDOW}&{extra}")
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json()
    assert body["errors"] == [{"field": field, "message": "given more than once"}]
    assert field in body["detail"]


def test_a_step_that_is_not_a_whole_number_of_rollups_is_refused_not_a_sawtooth(client, store) -> None:  # type: ignore[no-untyped-def]
    # A steady 6 per minute charted with step=90 read 12, 6, 12, 6: a 90 s step holds two minute
    # rollups, then one.
    post(client, request([counter("c", [(T0 + timedelta(minutes=i), 6.0, {}) for i in range(8)])]))
    with pytest.raises(QueryError, match="multiple of 60") as refused:
        run_query(MetricQuery(metric="c", agg="sum", start=T0, end=T0 + timedelta(minutes=6), step=90))
    assert refused.value.field == "step"
    response = client.get(f"/v1/query?metric=c&agg=rate&{WINDOW}&step=90")
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"][0]["field"] == "step"
    assert "e.g. 120" in response.get_json()["detail"]
    steady = run_query(MetricQuery(metric="c", agg="sum", start=T0, end=T0 + timedelta(minutes=6), step=120))
    assert [p[1] for p in steady.series[0].points] == [12.0, 12.0, 12.0]


def test_hour_resolution_steps_are_whole_hours(client, store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError, match="multiple of 3600"):
        run_query(
            MetricQuery(
                metric="c",
                agg="sum",
                start=T0 - timedelta(hours=6),
                end=T0,
                step=5400,
                resolution="hour",
            )
        )


def ticks(client, until) -> None:  # type: ignore[no-untyped-def]
    """A delta counter of 1 every 10 s from T0 - 10 min to ``until``: 0.1 per second."""
    at, points = T0 - timedelta(minutes=10), []
    while at < until:
        points.append((at, 1.0, {}))
        at += timedelta(seconds=10)
    post(client, request([counter("ticks", points)]))


def test_rate_over_a_window_ending_now_is_over_the_time_its_minutes_cover(client, store) -> None:  # type: ignore[no-untyped-def]
    # An alert rule's window [now - 5 min, now) at 12:00:30 holds the minutes 11:56 to 12:00,
    # 270 s of data: divided by 300 the rate read 10% low (20% a second past the minute).
    ticks(client, NOW)
    window = run_query(MetricQuery(metric="ticks", agg="rate", start=NOW - timedelta(minutes=5), end=NOW))
    assert window.series[0].points[0][1] == pytest.approx(0.1)


def test_rate_of_a_last_step_cut_short_is_over_its_whole_minute(client, store) -> None:  # type: ignore[no-untyped-def]
    # A past window ending at T0 + 90 s: its last step [T0 + 60 s, T0 + 90 s) holds the whole
    # T0 + 1 min rollup; divided by 30 s the rate read double.
    ticks(client, NOW)
    result = run_query(
        MetricQuery(metric="ticks", agg="rate", start=T0, end=T0 + timedelta(seconds=90), step=60)
    )
    assert [p[1] for p in result.series[0].points] == pytest.approx([0.1, 0.1])


def test_minute_resolution_before_the_minutes_retention_is_a_422_not_a_partial_answer(client, store) -> None:  # type: ignore[no-untyped-def]
    # Minute rollups expire 72 h after their minute (Firestore TTL deletes them over the next
    # day): resolution=minute over an older window answered with whatever was left.
    response = client.get(
        "/v1/query?metric=g&agg=count&start=2026-02-27T00:00:00Z&end=2026-02-27T06:00:00Z&resolution=minute"
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json()
    assert body["errors"][0]["field"] == "resolution"
    assert "72 h" in body["detail"]
    assert "resolution=hour" in body["detail"]
    within = client.get(
        "/v1/query?metric=g&agg=count&start=2026-03-01T00:00:00Z&end=2026-03-01T06:00:00Z&resolution=minute"
    )
    assert within.status_code == 200, within.get_data(as_text=True)


def test_an_empty_label_value_matches_the_series_without_the_label(client, store) -> None:  # type: ignore[no-untyped-def]
    # Prometheus' {endpoint=""}: the series that have no such label. It matched nothing, so the
    # traffic without an endpoint could not be charted apart.
    post(client, request([gauge("g", [(T0, 1.0, {"endpoint": "/v2/route"})])]))
    post(client, request([gauge("g", [(T0, 5.0, {})])]))
    without = client.get(f"/v1/query?metric=g&agg=max&{WINDOW}&label.endpoint=")
    assert without.status_code == 200, without.get_data(as_text=True)
    values = [p[1] for s in without.get_json()["series"] for p in s["points"] if p[1] is not None]
    assert values == [5.0]


def test_across_is_in_the_query_contract_and_refused_naming_its_values(client) -> None:  # type: ignore[no-untyped-def]
    document = client.get("/openapi.json").get_json()
    parameters = {p["name"]: p for p in document["paths"]["/v1/query"]["get"]["parameters"]}
    assert parameters["across"]["schema"]["enum"] == ["sum", "avg", "min", "max"]
    answer = client.get(f"/v1/query?metric=g&agg=count&{WINDOW}&across=median")
    assert answer.status_code == 422
    assert "across" in answer.get_data(as_text=True)


def test_the_query_contract_tells_of_the_label_filters_and_the_bounds(client) -> None:  # type: ignore[no-untyped-def]
    """``label.<name>`` filters are no listed parameter (any name): the operation says them, as the
    README says it does, and the step's description names the points bound."""
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/v1/query"]["get"]
    assert "label.<name>=<value>" in operation["summary"], operation["summary"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert "ION_QUERY_MAX_POINTS" in parameters["step"]["description"]
