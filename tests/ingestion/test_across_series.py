"""Gauges across series as Cloud Monitoring and Prometheus define it: each stored series aggregated
over time first, then the series combined. Cloud Run's instance count has one series per revision
and state (active, idle) in each region; the platform's instances are their sum, not their mean."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.metrics.fold import Accumulator, Fold
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import gauge, request

T0 = NOW.replace(second=0) - timedelta(minutes=10)
METRIC = "cloudrun.container.instance.count"
# (region, revision, state) -> instances reported every 10 s for 5 minutes
SERIES = {
    ("us-central1", "persona-router-00041", "active"): 12.0,
    ("us-central1", "persona-router-00041", "idle"): 4.0,
    ("us-central1", "persona-router-00042", "active"): 6.0,
    ("us-central1", "persona-router-00042", "idle"): 2.0,
    ("europe-west1", "persona-router-00017", "active"): 3.0,
    ("europe-west1", "persona-router-00017", "idle"): 1.0,
}


def points() -> list:  # type: ignore[type-arg]
    return [
        (
            T0 + timedelta(seconds=10 * i),
            value,
            {"region": region, "revision": revision, "state": state, "service": "persona-router"},
        )
        for (region, revision, state), value in SERIES.items()
        for i in range(30)
    ]


def test_fold_combines_series_after_aggregating_each_over_time() -> None:
    """Pure: the same samples folded pooled and across series."""
    pooled = Fold("avg", T0, T0 + timedelta(minutes=5), 300, {}, ["region"])
    summed = Fold("avg", T0, T0 + timedelta(minutes=5), 300, {}, ["region"], across="sum")
    for fold in (pooled, summed):
        for _at, value, labels in points():
            acc = fold.group(labels).steps.setdefault(0, Accumulator())
            acc.add_samples([value], increment=False)
    by_region = {s.labels["region"]: s.points[0][1] for s in pooled.series()}
    assert by_region == {"us-central1": 6.0, "europe-west1": 2.0}  # the mean series: wrong for a gauge
    by_region = {s.labels["region"]: s.points[0][1] for s in summed.series()}
    assert by_region == {"us-central1": 24.0, "europe-west1": 4.0}
    assert summed.output_count() == 2


@pytest.mark.emulators
@pytest.mark.parametrize(
    "case",
    [
        ("sum", ["region"], {}, {"us-central1": 24.0, "europe-west1": 4.0}),
        ("sum", [], {"state": "active"}, {"": 21.0}),
        ("max", ["region"], {}, {"us-central1": 12.0, "europe-west1": 3.0}),
        ("avg", ["region"], {}, {"us-central1": 6.0, "europe-west1": 2.0}),
        (None, ["region"], {}, {"us-central1": 6.0, "europe-west1": 2.0}),  # pooled samples
    ],
)
def test_the_query_sums_instances_across_revisions_and_states(client, store, case) -> None:  # type: ignore[no-untyped-def]
    across, group_by, labels, expected = case
    assert (
        client.post(
            "/v1/metrics",
            data=request([gauge(METRIC, points())]).SerializeToString(),
            content_type="application/x-protobuf",
        ).status_code
        == 200
    )
    result = run_query(
        MetricQuery(
            metric=METRIC, agg="avg", start=T0, end=T0 + timedelta(minutes=5), step=300,
            labels=labels, group_by=group_by, across=across,
        )
    )  # fmt: skip
    got = {s.labels.get("region", ""): s.points[0][1] for s in result.series}
    assert got == pytest.approx(expected)


@pytest.mark.emulators
def test_across_is_a_parameter_of_the_http_query_api(client, store) -> None:  # type: ignore[no-untyped-def]
    body = request([gauge(METRIC, points())]).SerializeToString()
    assert client.post("/v1/metrics", data=body, content_type="application/x-protobuf").status_code == 200
    window = {
        "metric": METRIC,
        "agg": "avg",
        "start": T0.isoformat().replace("+00:00", "Z"),
        "end": (T0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "by": "region",
    }
    answer = client.get("/v1/query", query_string={**window, "across": "sum"})
    assert answer.status_code == 200, answer.data
    assert {s["labels"]["region"]: s["points"][0][1] for s in answer.get_json()["series"]} == {
        "us-central1": 24.0,
        "europe-west1": 4.0,
    }
    refused = client.get("/v1/query", query_string={**window, "across": "median"})
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "across"


def test_a_series_without_a_point_in_a_step_is_absent_from_that_steps_reduction() -> None:
    """Pure: delta counters of two instances, one silent in the second step. Prometheus'
    ``avg by`` and Cloud Monitoring's reducers leave a series without a point out of a step; it
    was counted as 0 there (avg 5 instead of 10, min 0 instead of 10)."""
    answers = {}
    for across in ("avg", "min", "max", "sum"):
        fold = Fold("sum", T0, T0 + timedelta(minutes=15), 300, {}, [], across=across)
        fold.accumulator({"instance": "a"}, 0, None).add_counter(10.0)
        fold.accumulator({"instance": "b"}, 0, None).add_counter(20.0)
        fold.accumulator({"instance": "a"}, 1, None).add_counter(10.0)
        (series,) = fold.series()
        answers[across] = [value for _, value in series.points]
    assert answers["avg"] == [15.0, 10.0]
    assert answers["min"] == [10.0, 10.0]
    assert answers["max"] == [20.0, 10.0]
    # A step where no series has data: 0 for a sum across series, as without ``across``.
    assert answers["sum"] == [30.0, 10.0, 0.0]


@pytest.mark.emulators
def test_across_avg_of_delta_counters_over_the_store(client, store) -> None:  # type: ignore[no-untyped-def]
    from tests.ingestion.otlp_builders import counter

    both = [(T0, 10.0, {"instance": "a"}), (T0, 20.0, {"instance": "b"})]
    one = [(T0 + timedelta(minutes=5), 10.0, {"instance": "a"})]
    body = request([counter("jobs.done", both + one)]).SerializeToString()
    assert client.post("/v1/metrics", data=body, content_type="application/x-protobuf").status_code == 200

    def answer(across: str) -> list[float]:
        result = run_query(
            MetricQuery(
                metric="jobs.done", agg="sum", start=T0, end=T0 + timedelta(minutes=10), step=300,
                across=across,  # type: ignore[arg-type]
            )
        )  # fmt: skip
        return [value for _, value in result.series[0].points]

    assert answer("avg") == [15.0, 10.0]
    assert answer("min") == [10.0, 10.0]
    assert answer("sum") == [30.0, 10.0]
