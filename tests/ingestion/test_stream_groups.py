"""Cumulative stream states kept per sender and bucket: an SDK export writes one state document
per bucket, not one per series; senders never share one; states kept per stream before groups
existed are read on the way (an upgrade neither recounts a total nor applies a batch twice); a
stream silent past the memory is forgotten."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.ingestion.aggregate import CumulativePoint, SeriesBatch
from functions.ingestion.ingest import decode_and_aggregate
from functions.ingestion.otlp import content_hash
from functions.ingestion.stream_groups import STREAMS_FIELD, apply_streams
from functions.ingestion.write_units import Unit, applied_entry, applied_token
from shared.metrics.query import run_query
from shared.metrics.query_model import MetricQuery
from shared.metrics.store import APPLIED, STREAM_GROUPS, STREAMS
from tests.ingestion.conftest import NOW
from tests.ingestion.otlp_builders import CUMULATIVE, counter, ns, request

PB = "application/x-protobuf"
T0 = NOW.replace(second=0) - timedelta(minutes=5)
START = T0 - timedelta(hours=1)


def export(at_minute: int, values: dict[int, float], instance: str = "i-1") -> bytes:
    """One cumulative counter point per series (``values``: series number -> its total)."""
    at = T0 + timedelta(minutes=at_minute, seconds=5)
    points = [(at, value, {"route": f"/r{n}"}) for n, value in values.items()]
    return request(
        [counter("ion.requests", points, temporality=CUMULATIVE, start=START)], instance=instance
    ).SerializeToString()


def total() -> float:
    result = run_query(
        MetricQuery(metric="ion.requests", agg="sum", start=START, end=NOW + timedelta(minutes=5))
    )
    return sum(p[1] for s in result.series for p in s.points)


def post(client, body: bytes) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/metrics", data=body, content_type=PB)
    assert response.status_code == 200, response.data


@pytest.mark.emulators
def test_an_export_writes_one_state_document_per_sender_and_bucket(client, store, fs) -> None:  # type: ignore[no-untyped-def]
    series = range(40)
    for minute, base in enumerate((10.0, 25.0, 45.0)):
        for instance, extra in (("i-1", 0.0), ("i-2", 1000.0)):
            post(client, export(minute, {n: base + extra + n for n in series}, instance=instance))
    # Each process's totals since its start count whole at its first export, then the increments.
    assert total() == sum(45.0 + n for n in series) + sum(1045.0 + n for n in series)
    groups = list(fs.collection(STREAM_GROUPS).stream())
    assert len(groups) == 2  # two senders, one bucket
    for group in groups:
        assert len(group.to_dict()[STREAMS_FIELD]) == 40
    assert list(fs.collection(STREAMS).list_documents()) == []


@pytest.mark.emulators
def test_a_state_kept_per_stream_before_groups_is_continued_not_recounted(client, store, fs) -> None:  # type: ignore[no-untyped-def]
    first = export(0, {0: 100.0})
    batch = decode_and_aggregate(first, PB, ns(NOW))
    ((stream, (point,)),) = next(iter(batch.series.values())).streams.items()
    fs.collection(STREAMS).document(stream).set(
        {"shape": "sum", "start": point.start, "time": point.time, "value": 100.0}
    )
    post(client, export(1, {0: 130.0}))
    assert total() == 30.0  # the increment since the kept state, not the whole 130


@pytest.mark.emulators
def test_a_batch_applied_before_groups_is_not_applied_again(client, store, fs) -> None:  # type: ignore[no-untyped-def]
    body = export(0, {0: 100.0})
    batch = decode_and_aggregate(body, PB, ns(NOW))
    ((stream, (point,)),) = next(iter(batch.series.values())).streams.items()
    until = int(NOW.timestamp()) + 3600
    fs.collection(STREAMS).document(stream).set(
        {
            "shape": "sum",
            "start": point.start,
            "time": point.time,
            "value": 100.0,
            APPLIED: [applied_entry(applied_token(content_hash(body)), until)],
        }
    )
    post(client, body)  # the exporter's retry of a payload stored by the version before
    assert total() == 0.0
    assert list(fs.collection(STREAM_GROUPS).list_documents()) == []


def _series_with(stream: str, point: CumulativePoint) -> SeriesBatch:
    series = SeriesBatch(metric="ion.requests", sid="s1", labels={"route": "/r"}, kind="sum")
    series.streams[stream] = [point]
    series.origins[stream] = "origin-1"
    return series


def test_a_stream_silent_past_the_memory_is_dropped_from_its_group() -> None:
    now = NOW
    old_time = ns(now - timedelta(days=9))
    stored = {
        STREAMS_FIELD: {
            "gone": {"shape": "sum", "start": 1, "time": old_time, "value": 5.0},
            "kept": {"shape": "sum", "start": 1, "time": ns(now - timedelta(days=1)), "value": 5.0},
        },
        APPLIED: [],
    }
    at = ns(now - timedelta(minutes=1))
    series = _series_with("new", CumulativePoint("sum", ns(now - timedelta(hours=1)), at, 7.0))
    unit = Unit("k", 0, [series], [at // 60_000_000_000], stream=True, origin="origin-1")
    out = apply_streams(
        unit, stored, {}, "token", now, memory=timedelta(days=8), oldest=0, too_large=lambda _doc: None
    )
    assert out.document is not None
    assert set(out.document[STREAMS_FIELD]) == {"kept", "new"}
    assert out.document[APPLIED][0].startswith("token@")
    assert out.refused == []
    ((_, cells),) = out.cells
    assert sum(cell.sum for cell in cells.values()) == 7.0  # a new stream with a start: whole value
