"""Metric ingestion bench: parse + aggregate throughput per instance (OTLP protobuf), Firestore
writes per point at that load, and percentile error against exact values.

Load: 1,000,000 samples from 100 series (lognormal latencies, one sample per OTLP gauge data
point, as a producer sends raw measurements), in requests of 100,000 points, each covering the
100 series over one minute. Writes are counted from the write plan the ingestion applies (one
rollup per series and minute, one per series and hour, one marker per transaction), the
percentiles from the stored (serialized, merged) sketches against the exact sorted samples.

    .venv/bin/python bench/ingest.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from functions.ingestion.aggregate import Cell
from functions.ingestion.otlp import aggregate, decode_request
from functions.ingestion.writer import chunk_series

SERIES = 100
SAMPLES = 1_000_000
PER_REQUEST = 100_000
QUANTILES = (0.5, 0.9, 0.95, 0.99)
T0 = 1_772_452_800 * 1_000_000_000  # 2026-03-02T12:00:00Z
GOALS = {"points_per_s": 100_000, "writes_per_point": 1 / 1000, "error": 0.01}


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_requests(rng: random.Random) -> tuple[list[bytes], dict[int, list[float]]]:
    exact: dict[int, list[float]] = {s: [] for s in range(SERIES)}
    payloads = []
    for r in range(SAMPLES // PER_REQUEST):
        points: dict[int, list[m.NumberDataPoint]] = {s: [] for s in range(SERIES)}
        for i in range(PER_REQUEST):
            s = i % SERIES
            value = rng.lognormvariate(3.0 + (s % 10) * 0.2, 0.6)
            exact[s].append(value)
            t = T0 + r * 60_000_000_000 + (i * 59_000_000_000) // PER_REQUEST
            points[s].append(m.NumberDataPoint(time_unix_nano=t, as_double=value))
        metrics = []
        for s in range(SERIES):
            for p in points[s]:
                p.attributes.extend([kv("endpoint", f"/e{s % 20}"), kv("instance", f"i{s // 20}")])
            metrics.append(
                m.Metric(name="http.server.request.duration", unit="ms", gauge=m.Gauge(data_points=points[s]))
            )
        request = ExportMetricsServiceRequest(
            resource_metrics=[
                m.ResourceMetrics(
                    resource={"attributes": [kv("service.name", "route"), kv("cloud.region", "us-central1")]},
                    scope_metrics=[m.ScopeMetrics(metrics=metrics)],
                )
            ]
        )
        payloads.append(request.SerializeToString())
    return payloads, exact


def main() -> None:
    rng = random.Random(2026)
    payloads, exact = build_requests(rng)
    now_ns = T0 + 3600 * 1_000_000_000

    started = time.perf_counter()
    batches = []
    for payload in payloads:
        request = decode_request(payload, "application/x-protobuf")
        batches.append(aggregate(request, now_ns=now_ns, max_age_s=72 * 3600, max_future_s=600))
    elapsed = time.perf_counter() - started
    points = sum(b.accepted for b in batches)
    assert points == SAMPLES, points

    writes = 0
    for batch in batches:
        chunks = chunk_series(batch.series.values(), 400)
        for chunk in chunks:
            for series in chunk:
                writes += len(series.minutes) + len({minute // 60 for minute in series.minutes})
            writes += 1  # the batch marker of the chunk
    registry = SERIES + 1  # series and metric registry, once per series (refreshed daily)

    # Percentiles from the stored form: every minute cell serialized, read back and merged.
    merged: dict[str, Cell] = {}
    for batch in batches:
        for sid, series in batch.series.items():
            for cell in series.minutes.values():
                stored = Cell.from_fields(cell.to_fields())
                merged.setdefault(sid, Cell()).merge(stored)
    labels_of = {sid: s.labels for b in batches for sid, s in b.series.items()}
    worst = 0.0
    everything: list[float] = []
    for sid, cell in merged.items():
        s = int(labels_of[sid]["instance"][1:]) * 20 + int(labels_of[sid]["endpoint"][2:])
        values = sorted(exact[s])
        everything += values
        assert cell.count == len(values)
        for q in QUANTILES:
            truth = values[int(q * (len(values) - 1))]
            worst = max(worst, abs(cell.sketch.quantile(q) - truth) / truth)  # type: ignore[operator]
    total = Cell()
    for cell in merged.values():
        total.merge(cell)
    everything.sort()
    worst_all = max(
        abs(total.sketch.quantile(q) - everything[int(q * (len(everything) - 1))])  # type: ignore[operator]
        / everything[int(q * (len(everything) - 1))]
        for q in QUANTILES
    )
    exact_counts = total.count == SAMPLES and abs(total.sum - sum(everything)) <= 1e-9 * total.sum

    rate = points / elapsed
    per_point = writes / points
    rows = [
        (
            "parse + aggregate (points/s, 1 core)",
            f"{rate:,.0f}",
            f">= {GOALS['points_per_s']:,}",
            rate >= GOALS["points_per_s"],
        ),
        (
            "Firestore writes per point",
            f"{per_point:.6f} (1/{1 / per_point:,.0f})",
            "<= 0.001000 (1/1,000)",
            per_point <= GOALS["writes_per_point"],
        ),
        ("  writes for 1M points", f"{writes:,} (+{registry} registry once)", "", True),
        ("max p50/p90/p95/p99 error per series", f"{worst:.4%}", "<= 1%", worst <= GOALS["error"]),
        ("max percentile error, 100 series merged", f"{worst_all:.4%}", "<= 1%", worst_all <= GOALS["error"]),
        ("counts and sums exact", str(exact_counts), "True", exact_counts),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'measured':>32}  {'goal':>22}")
    for name, measured, goal, ok in rows:
        print(f"{name:<{width}}  {measured:>32}  {goal:>22}  {'ok' if ok else 'MISSED'}")
    shape = f"{len(payloads)} requests of {PER_REQUEST:,} points"
    print(f"({SAMPLES:,} samples, {SERIES} series, {shape}, {elapsed:.2f} s of parse + aggregate)")


if __name__ == "__main__":
    main()
