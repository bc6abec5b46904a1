"""A histogram point without ``sum`` (optional in OTLP: an SDK or Collector may drop it, e.g. for
a histogram of negative values) has an unknown sum, not a sum of 0: ``sum`` and ``avg`` of a step
holding one have no value and the answer says why, while ``count``, ``rate`` and percentiles are
still answered. Before, such a point was stored with sum 0 and read ``avg = 0``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from google.protobuf.json_format import MessageToDict

from functions.ingestion.aggregate import Cell
from shared.metrics.fold import Accumulator, Fold
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery, QueryResult
from shared.metrics.sketch import Sketch
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, exp_histogram, histogram, request

PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=10)
BOUNDS = [0.1, 0.5, 1.0]


def without_sum(metric):  # type: ignore[no-untyped-def]
    shape = metric.WhichOneof("data")
    for point in getattr(metric, shape).data_points:
        point.ClearField("sum")
    return metric


def post(client, metrics, encoding: str) -> None:  # type: ignore[no-untyped-def]
    body = request(metrics)
    if encoding == "json":
        data, content_type = json.dumps(MessageToDict(body)).encode(), "application/json"
        assert '"sum"' not in data.decode()
    else:
        data, content_type = body.SerializeToString(), PB
    response = client.post("/v1/metrics", data=data, content_type=content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "partialSuccess" not in (response.get_json(silent=True) or {})


def ask(agg: str, step: int | None = None, **kw) -> QueryResult:  # type: ignore[no-untyped-def]
    start = T0 - timedelta(minutes=5)
    end = start + timedelta(minutes=15) if step else NOW + timedelta(minutes=1)
    return run_query(MetricQuery(metric="job.duration", agg=agg, start=start, end=end, step=step, **kw))  # type: ignore[arg-type]


def value(agg: str) -> float | None:
    points = [p[1] for s in ask(agg).series for p in s.points]
    return points[0] if points else None


@pytest.mark.emulators
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("shape", ["delta", "cumulative", "exponential"])
def test_sum_and_avg_are_unknown_count_and_percentiles_answered(client, store, encoding, shape) -> None:  # type: ignore[no-untyped-def]
    if shape == "delta":
        batches = [[without_sum(histogram("job.duration", T0, BOUNDS, [1, 2, 1, 1], total=0.0))]]
    elif shape == "exponential":
        batches = [[without_sum(exp_histogram("job.duration", T0, [0.2, 0.3, 0.4, 0.9, 1.5]))]]
    else:
        start = T0 - timedelta(minutes=1)
        batches = [
            [without_sum(histogram("job.duration", T0, BOUNDS, [1, 0, 0, 0], total=0.0, temporality=CUMULATIVE, start=start))],
            [without_sum(histogram("job.duration", T0 + timedelta(minutes=1), BOUNDS, [1, 2, 1, 1], total=0.0, temporality=CUMULATIVE, start=start))],
        ]  # fmt: skip
    for metrics in batches:
        post(client, metrics, encoding)
    assert value("count") == 5
    # Before: sum 0 and avg 0 s, a wrong number.
    assert value("sum") is None
    assert value("avg") is None
    assert value("p50") is not None
    assert value("rate") is not None
    assert "without their sum" in ask("avg").notes[0]
    assert ask("count").notes == []


@pytest.mark.emulators
def test_only_the_steps_holding_such_points_lose_their_sum(client, store) -> None:  # type: ignore[no-untyped-def]
    post(client, [histogram("job.duration", T0, BOUNDS, [1, 1, 0, 0], total=0.4)], "protobuf")
    post(client, [without_sum(histogram("job.duration", T0 + timedelta(minutes=5), BOUNDS, [0, 1, 1, 0], total=0.0))], "protobuf")  # fmt: skip
    post(client, [histogram("job.duration", T0 + timedelta(minutes=5), BOUNDS, [0, 0, 1, 0], total=0.8)], "protobuf")  # fmt: skip
    sums = ask("sum", step=300)
    assert [(p[0], p[1]) for p in sums.series[0].points] == [
        (T0 - timedelta(minutes=5), 0.0),
        (T0, pytest.approx(0.4)),
    ]  # the step at T0 + 5 min (one point without sum) is left out, not 0.8
    assert "1 step:" in sums.notes[0]
    counts = ask("count", step=300)
    assert [p[1] for p in counts.series[0].points] == [0.0, 2.0, 3.0]


@pytest.mark.emulators
def test_the_http_answer_says_why(client, store) -> None:  # type: ignore[no-untyped-def]
    post(client, [without_sum(histogram("job.duration", T0, BOUNDS, [1, 2, 1, 1], total=0.0))], "protobuf")
    window = {
        "metric": "job.duration",
        "start": (T0 - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "end": (T0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
    }
    answer = client.get("/v1/query", query_string={**window, "agg": "avg"}).get_json()
    assert answer["series"][0]["points"] == []
    assert "sum is unknown" in answer["notes"][0]
    assert "notes" not in client.get("/v1/query", query_string={**window, "agg": "count"}).get_json()


def test_across_leaves_a_step_out_where_one_series_has_no_sum() -> None:
    """Pure: a sum across series with one series' sum unknown would be a wrong number."""
    fold = Fold("sum", T0, T0 + timedelta(minutes=10), 300, {}, [], across="sum")
    known = {"count": 2.0, "sum": 1.5, "kind": "histogram"}
    unknown = {"count": 3.0, "sum": 0.0, "unsummed": 3.0, "kind": "histogram"}
    fold.accumulator({"route": "/a"}, 0, None).add(known, None)
    fold.accumulator({"route": "/b"}, 0, None).add(unknown, None)
    fold.accumulator({"route": "/a"}, 1, None).add(known, None)
    (series,) = fold.series()
    assert series.points == [(T0 + timedelta(minutes=5), 1.5)]
    assert fold.notes
    assert "1 step:" in fold.notes[0]


def test_unknown_sums_survive_storage_and_merging() -> None:
    """What the writer, the downsampler and the recording rules do with a cell."""
    cell = Cell()
    cell.add_distribution(4, None, 0.1, 0.9, Sketch(), 1)
    cell.add_distribution(2, 1.0, 0.2, 0.8, Sketch(), 2)
    entry, sketch = cell.to_entry({}, "histogram")
    assert (entry["unsummed"], entry["sum"], entry["count"]) == (4, 1.0, 6)
    merged = Cell.from_entry(entry, sketch)
    merged.merge(cell.copy())
    assert merged.unsummed == 8
    acc = Accumulator()
    acc.add(entry, None)
    assert acc.value("avg", 60) is None
    assert acc.value("count", 60) == 6
    plain, _ = Cell().to_entry({}, "gauge")
    assert "unsummed" not in plain  # documents without such points are stored as before
