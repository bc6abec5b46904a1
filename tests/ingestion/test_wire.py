"""The decode that keeps data point attributes and histogram arrays as wire bytes reads every
payload as OTLP's own classes do: the same labels and arrays, unpacked arrays (which a parser must
accept) included, and a point whose bytes are not valid refused alone, with its reason."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from functions.ingestion.ingest import decode_and_aggregate
from functions.ingestion.labels import point_attrs, raw_point_attrs
from functions.ingestion.wire import histogram_arrays, raw_request_class
from tests.ingestion.otlp_builders import CUMULATIVE, DELTA, counter, gauge, histogram, ns, request

PB = "application/x-protobuf"
NOW = datetime.now(UTC).replace(microsecond=0)
AT = NOW - timedelta(minutes=2)
BOUNDS = (0.005, 0.01, 0.05, 0.1, 0.5)
COUNTS = (3, 0, 7, 1, 0, 2)


def now_ns() -> int:
    return ns(NOW)


def mixed_request() -> ExportMetricsServiceRequest:
    rng = random.Random(3)
    metrics = [
        gauge("ion.cache.size", [(AT, 12.5, {"tier": "l1", "endpoint": "/v2/route"})]),
        counter(
            "ion.requests",
            [(AT, 41.0, {"http.response.status_code": 200, "ok": True, "ratio": 0.5})],
            temporality=CUMULATIVE,
            start=AT - timedelta(hours=1),
        ),
        *(
            histogram(
                "http.server.request.duration",
                AT,
                BOUNDS,
                COUNTS,
                total=rng.uniform(0.1, 1.0),
                labels={"http.route": f"/r{i}", "region": "us-central1"},
                temporality=temporality,
                start=AT - timedelta(hours=1),
                minimum=0.001,
                maximum=0.9,
            )
            for i, temporality in enumerate((DELTA, CUMULATIVE, CUMULATIVE))
        ),
    ]
    return request(metrics)


def test_raw_decode_reads_the_same_labels_and_arrays_as_otlp_classes() -> None:
    standard = mixed_request()
    raw = raw_request_class().FromString(standard.SerializeToString())
    checked = 0
    for std_rm, raw_rm in zip(standard.resource_metrics, raw.resource_metrics, strict=True):
        for std_metric, raw_metric in zip(
            std_rm.scope_metrics[0].metrics, raw_rm.scope_metrics[0].metrics, strict=True
        ):
            shape = std_metric.WhichOneof("data")
            for std_dp, raw_dp in zip(
                getattr(std_metric, shape).data_points, getattr(raw_metric, shape).data_points, strict=True
            ):
                assert raw_point_attrs(tuple(raw_dp.attributes)) == point_attrs(std_dp)
                if shape == "histogram":
                    assert histogram_arrays(raw_dp) == (BOUNDS, COUNTS, True)
                checked += 1
    assert checked == 5


def test_protobuf_and_json_bodies_aggregate_alike() -> None:
    standard = mixed_request()
    from_pb = decode_and_aggregate(standard.SerializeToString(), PB, now_ns())
    from_json = decode_and_aggregate(MessageToJson(standard).encode(), "application/json", now_ns())
    assert from_pb.rejected == {}
    assert from_pb.accepted == from_json.accepted == 5
    assert {sid: s.labels for sid, s in from_pb.series.items()} == {
        sid: s.labels for sid, s in from_json.series.items()
    }
    labels = {s.metric: s.labels for s in from_pb.series.values()}
    assert labels["ion.requests"]["http.response.status_code"] == "200"
    assert labels["ion.requests"]["ok"] == "true"


def _cumulative_histogram_points(body: bytes) -> list[tuple[tuple[float, ...], tuple[int, ...]]]:
    batch = decode_and_aggregate(body, PB, now_ns())
    assert batch.rejected == {}
    return [
        (point.bounds, point.buckets)
        for series in batch.series.values()
        for points in series.streams.values()
        for point in points
    ]


def _one_cumulative_histogram() -> ExportMetricsServiceRequest:
    return request(
        [
            histogram(
                "http.server.request.duration",
                AT,
                BOUNDS,
                COUNTS,
                total=0.7,
                temporality=CUMULATIVE,
                start=AT - timedelta(hours=1),
            )
        ]
    )


def test_unpacked_histogram_arrays_are_read_like_packed_ones() -> None:
    """proto3 parsers accept repeated scalars unpacked (one tag per value): such a point's arrays
    miss the bytes fields and are decoded again with OTLP's class."""
    raw = raw_request_class().FromString(_one_cumulative_histogram().SerializeToString())
    dp = raw.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
    del dp.explicit_bounds[:]
    del dp.bucket_counts[:]
    unpacked = b"".join(b"\x31" + struct.pack("<Q", c) for c in COUNTS)  # field 6, fixed64
    unpacked += b"".join(b"\x39" + struct.pack("<d", b) for b in BOUNDS)  # field 7, double
    dp.MergeFromString(unpacked)
    body = raw.SerializeToString()
    assert ExportMetricsServiceRequest.FromString(body).resource_metrics[0].scope_metrics[0].metrics[
        0
    ].histogram.data_points[0].bucket_counts == list(COUNTS)  # what OTLP's own class reads
    assert _cumulative_histogram_points(body) == [(BOUNDS, COUNTS)]


def test_a_packed_array_split_in_two_chunks_is_joined() -> None:
    raw = raw_request_class().FromString(_one_cumulative_histogram().SerializeToString())
    dp = raw.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
    packed = dp.bucket_counts[0]
    dp.bucket_counts[:] = [packed[:16], packed[16:]]
    assert _cumulative_histogram_points(raw.SerializeToString()) == [(BOUNDS, COUNTS)]


@pytest.mark.parametrize(
    ("field", "garbage", "reason"),
    [
        ("attributes", b"\x0a\xff", "not valid OTLP KeyValue"),
        ("bucket_counts", b"\x01\x02\x03", "arrays of 64-bit values"),
    ],
)
def test_a_point_with_bad_bytes_is_refused_alone(field: str, garbage: bytes, reason: str) -> None:
    standard = _one_cumulative_histogram()
    standard.resource_metrics[0].scope_metrics[0].metrics.append(
        gauge("ion.cache.size", [(AT, 1.0, {"tier": "l1"})])
    )
    raw = raw_request_class().FromString(standard.SerializeToString())
    dp = raw.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
    getattr(dp, field).append(garbage)
    batch = decode_and_aggregate(raw.SerializeToString(), PB, now_ns())
    assert batch.accepted == 1
    ((metric, why),) = batch.rejected
    assert metric == "http.server.request.duration"
    assert reason in why
