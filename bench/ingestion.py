"""Metric ingestion bench: parse + aggregate throughput per instance (OTLP protobuf), Firestore
writes per point at that load, and percentile error against exact values.

Load: 1,000,000 samples from 100 series (lognormal latencies, one sample per OTLP gauge data
point, as a producer sends raw measurements), in requests of 100,000 points, each covering the
100 series over one minute.

Writes are measured, not planned: every request goes through the real ingestion path
(``ingest_payload``: decode, aggregate, series registration and limit, exactly-once store) into a
Firestore emulator, then the downsampler folds the hour, and every write of every commit is
counted at the Firestore client (rollups, stream states, registry entries, fold states,
anything). The 100 series are one bucket, so a request writes one rollup document. The hour
fold's writes are reported amortised over this bench's points and over an hour at the goal load
(100,000 points/s). Percentiles are checked from the stored minute sketches (serialized, merged)
and from the folded hour rollups read back through the query API. The stored size of the bucket
documents (Firestore's own size rules) is reported against its 1 MiB limit.

Second part, the shape real OpenTelemetry SDKs send: one point per series per export, every 60 s,
cumulative sums and explicit-bucket histograms with a few attributes (one of them an int), made
by the real Python SDK (``opentelemetry-sdk`` instruments, collected by a reader) and encoded by
the code its OTLP exporter uses (``encode_metrics``), at 1,000 and 10,000 series. Beside the
ingestion's points/s, the floor measured in the same run on the same payloads: decoding them
with the same protobuf library and visiting every point and attribute. Then the same exports
through the real path into the emulator: Firestore writes and reads per point and their cost
per million points at Firestore's standard prices ($0.18 per 100k writes, $0.06 per 100k
reads; reads counted as documents requested, an upper bound).

    .venv/bin/python bench/ingestion.py             # both parts; starts a Firestore emulator unless
                                                 # FIRESTORE_EMULATOR_HOST is set
    .venv/bin/python bench/ingestion.py --sdk-only  # the SDK shape only

The code is split by part: ``ingest_load.py`` (the 1M-sample load), ``ingest_store.py`` (the
Firestore emulator, writes and reads counted, document sizes), ``ingest_sdk.py`` (the SDK shape
and the decode floor).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Before any settings are read: the bench's own project, and no Pub/Sub (nothing to announce to).
os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "ion-ops-bench")
os.environ["ION_METRICS_UPDATES_TOPIC"] = ""

from bench.ingest_load import PER_REQUEST, QUANTILES, SAMPLES, SERIES, T0, build_requests
from bench.ingest_sdk import FLOOR_GOAL, floor_visit, ingest_cpu, points_per_second, sdk_shape
from bench.ingest_store import measure_store, stop_emulator
from functions.ingestion.aggregate import Cell
from functions.ingestion.otlp import decode_request
from functions.ingestion.points import aggregate

GOALS = {"points_per_s": 100_000, "writes_per_point": 1 / 1000, "error": 0.01}


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

    # The floor on the same payloads, interleaved with the ingestion's own decode + aggregate.
    floor_rates = points_per_second(
        {"floor": floor_visit, "ingest": ingest_cpu(now_ns)}, payloads[:3], repeats=3
    )

    store = measure_store(payloads)
    writes = store["ingest_writes"]

    # Percentiles from the stored form: every minute cell serialized, read back and merged.
    merged: dict[str, Cell] = {}
    for batch in batches:
        for sid, series in batch.series.items():
            for cell in series.minutes.values():
                stored = Cell.from_entry(*cell.to_entry(series.labels, series.kind))
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
    # The folded hour rollups, read back through the query API.
    store["hours_exact"] = (
        store["hour_count"] == SAMPLES and abs(store["hour_sum"] - total.sum) <= 1e-9 * total.sum
    )
    store["hour_error"] = 0.0
    for q, by_series in store["hour_quantiles"].items():
        for (endpoint, instance), value in by_series.items():
            values = sorted(exact[int(instance[1:]) * 20 + int(endpoint[2:])])
            truth = values[int(q * (len(values) - 1))]
            store["hour_error"] = max(store["hour_error"], abs(value - truth) / truth)

    rate = points / elapsed
    per_point = writes / points
    steady = store["steady_writes"] / store["steady_points"]
    fold_here = store["fold_writes"] / points
    goal_hour_points = GOALS["points_per_s"] * 3600
    fold_at_goal = store["fold_writes"] / goal_hour_points
    at_goal = steady + fold_at_goal
    rows = [
        (
            "parse + aggregate (points/s, 1 core)",
            f"{rate:,.0f}",
            f">= {GOALS['points_per_s']:,}",
            rate >= GOALS["points_per_s"],
        ),
        (
            "  floor: decode + visit every point and attribute",
            f"{floor_rates['floor']:,.0f}",
            "",
            True,
        ),
        (
            "  ingest (decode + aggregate) / floor, same run",
            f"{floor_rates['ingest']:,.0f} / {floor_rates['floor']:,.0f} = "
            f"{floor_rates['ingest'] / floor_rates['floor']:.2f}",
            f">= {FLOOR_GOAL}",
            floor_rates["ingest"] / floor_rates["floor"] >= FLOOR_GOAL,
        ),
        (
            "writes per point, ingest (per request, measured)",
            f"{steady:.6f} (1/{1 / steady:,.0f})",
            "<= 0.001000 (1/1,000)",
            steady <= GOALS["writes_per_point"],
        ),
        (
            "  ingest writes for 1M points",
            f"{writes:,} = {per_point:.6f}/point (incl. {store['registry_writes']} registry, once)",
            "",
            True,
        ),
        (
            "  hour fold writes (downsampler)",
            f"{store['fold_writes']:,} ({fold_here:.6f}/point here)",
            "",
            True,
        ),
        (
            "writes per point at 100k points/s, fold amortised",
            f"{at_goal:.7f} (1/{1 / at_goal:,.1f})",
            "<= 0.001000 (1/1,000)",
            at_goal <= GOALS["writes_per_point"],
        ),
        (
            "bucket document size, minute / hour (100 series)",
            f"{store['minute_bytes'] / 1024:,.0f} KiB / {store['hour_bytes'] / 1024:,.0f} KiB",
            "< 1,024 KiB",
            max(store["minute_bytes"], store["hour_bytes"]) < 1024 * 1024,
        ),
        ("hour rollups: count, sum exact (query)", str(store["hours_exact"]), "True", store["hours_exact"]),
        (
            "max percentile error per series, hour rollups",
            f"{store['hour_error']:.4%}",
            "<= 1%",
            store["hour_error"] <= GOALS["error"],
        ),
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
    print(
        f"(fold amortised at the goal load: {store['fold_writes']} writes per hour over "
        f"{goal_hour_points:,} points = {fold_at_goal:.2e}/point)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sdk-only", action="store_true", help="only the shape real SDKs send")
    parser.add_argument("--no-store", action="store_true", help="SDK shape: skip the emulator part")
    args = parser.parse_args()
    try:
        if not args.sdk_only:
            main()
        sdk_shape(store=not args.no_store)
    finally:
        stop_emulator()
