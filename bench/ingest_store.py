"""The ingest bench's Firestore parts: requests through the real ingestion path into an emulator,
every write and read counted at the Firestore client, stored document sizes by Firestore's rules,
and the hour fold checked through the query API."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest_load import PER_REQUEST, SERIES, T0  # noqa: E402


def firestore_size(value: Any) -> int:
    """Stored size of a value by Firestore's rules (strings and names: UTF-8 bytes + 1; numbers,
    timestamps: 8; maps: their keys and values)."""
    if isinstance(value, dict):
        return sum(len(k.encode()) + 1 + firestore_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(firestore_size(v) for v in value)
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, bytes):
        return len(value)
    if value is None or isinstance(value, bool):
        return 1
    return 8


def _largest_document(collection: Any) -> int:
    return max(
        len(snapshot.reference.path.encode()) + 1 + 32 + firestore_size(snapshot.to_dict() or {})
        for snapshot in collection.stream()
    )


class _CountingCommits:
    """Counts every document write of every successful commit through the Firestore client."""

    def __init__(self) -> None:
        from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

        self.writes = 0
        real = FirestoreClient.commit
        counter = self

        def commit(client: Any, request: Any = None, **kwargs: Any) -> Any:
            response = real(client, request=request, **kwargs)
            writes = request["writes"] if isinstance(request, dict) else request.writes
            counter.writes += len(writes)
            return response

        FirestoreClient.commit = commit  # type: ignore[method-assign]


def measure_store(payloads: list[bytes]) -> dict[str, Any]:
    """Every request through the real ingestion path into a Firestore emulator, the hour folded,
    and every write counted; the folded hours checked through the query API."""
    from devtools.emulators import start_firestore
    from devtools.processes import free_port

    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "ion-ops-bench")
    os.environ["ION_METRICS_UPDATES_TOPIC"] = ""  # no Pub/Sub in the bench
    emulator = None
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        port = free_port()
        emulator = start_firestore(
            port, log_dir=Path(__file__).resolve().parent.parent / ".run" / "bench-logs"
        )
        os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
    try:
        return _measure_store(payloads)
    finally:
        if emulator is not None:
            emulator.stop()
            del os.environ["FIRESTORE_EMULATOR_HOST"]


def _measure_store(payloads: list[bytes]) -> dict[str, Any]:
    from functions.ingestion.downsample import downsample
    from functions.ingestion.ingest import ingest_payload
    from shared.clock import FrozenClock, set_clock
    from shared.metrics.query import run_query
    from shared.metrics.query_model import MetricQuery
    from shared.metrics.store import rollups

    start = datetime.fromtimestamp(T0 / 1e9, UTC)
    clock = FrozenClock(start + timedelta(minutes=11))  # just after the last request's minute
    set_clock(clock)
    counter = _CountingCommits()
    per_request = []
    for payload in payloads:
        before = counter.writes
        result = ingest_payload(payload, "application/x-protobuf")
        assert result.rejected == 0, result.batch.rejection_message()
        per_request.append(counter.writes - before)
    ingest_writes = counter.writes
    # The first request also registers the 100 series and the metric (refreshed daily after).
    registry = per_request[0] - per_request[1]

    clock.set(start + timedelta(hours=3, minutes=10))  # the hour closed > lateness + grace ago
    before = counter.writes
    folded = downsample()
    assert folded.complete, folded
    assert folded.series == SERIES, folded
    fold_writes = counter.writes - before
    # A re-run folds nothing again; it may move the recording rules' backfill a day further back
    # (one fold-state write, no rule hour before the data), as every run does until 15 days.
    again = downsample()
    assert (again.series, again.hours_written, again.rule_hours_written) == (0, 0, 0), again

    window = {"start": start, "end": start + timedelta(hours=1), "resolution": "hour"}
    metric = "http.server.request.duration"
    count = run_query(MetricQuery(metric=metric, agg="count", **window)).series[0].points[0][1]
    total = run_query(MetricQuery(metric=metric, agg="sum", **window)).series[0].points[0][1]
    return {
        "minute_bytes": _largest_document(rollups(metric, "minute")),
        "hour_bytes": _largest_document(rollups(metric, "hour")),
        "ingest_writes": ingest_writes,
        "registry_writes": registry,
        "steady_writes": sum(per_request[1:]),
        "steady_points": PER_REQUEST * (len(payloads) - 1),
        "fold_writes": fold_writes,
        "hour_count": count,
        "hour_sum": total,
        "hour_quantiles": {
            q: {
                (s.labels["endpoint"], s.labels["instance"]): s.points[0][1]
                for s in run_query(
                    MetricQuery(metric=metric, agg=agg, group_by=["endpoint", "instance"], **window)
                ).series
            }
            for q, agg in ((0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99"))
        },
    }


class _CountingReads:
    """Counts the documents requested by every get/get_all and one read per aggregation query."""

    def __init__(self) -> None:
        from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

        self.reads = 0
        real_get, real_agg = FirestoreClient.batch_get_documents, FirestoreClient.run_aggregation_query
        counter = self

        def batch_get(client: Any, request: Any = None, **kwargs: Any) -> Any:
            docs = request["documents"] if isinstance(request, dict) else request.documents
            counter.reads += len(docs)
            return real_get(client, request=request, **kwargs)

        def aggregation(client: Any, request: Any = None, **kwargs: Any) -> Any:
            counter.reads += 1
            return real_agg(client, request=request, **kwargs)

        FirestoreClient.batch_get_documents = batch_get  # type: ignore[method-assign]
        FirestoreClient.run_aggregation_query = aggregation  # type: ignore[method-assign]


_counters: dict[str, Any] = {}


def measure_sdk_store(payloads: list[bytes], series: int) -> dict[str, float]:
    with _emulator():
        from functions.ingestion import known_series
        from functions.ingestion.ingest import ingest_payload
        from shared.clock import FrozenClock, set_clock

        known_series.reset()
        if not _counters:
            _counters["writes"], _counters["reads"] = _CountingCommits(), _CountingReads()
        writes, reads = _counters["writes"], _counters["reads"]
        start = datetime.fromtimestamp(T0 / 1e9, UTC)
        clock = FrozenClock(start)
        set_clock(clock)
        steady_writes = steady_reads = steady_points = 0
        steady_seconds = 0.0
        for index, payload in enumerate(payloads):
            clock.set(start + timedelta(minutes=index, seconds=6))
            w0, r0, t0 = writes.writes, reads.reads, time.perf_counter()
            result = ingest_payload(payload, "application/x-protobuf")
            seconds = time.perf_counter() - t0
            assert result.rejected == 0, result.batch.rejection_message()
            if index:
                steady_writes += writes.writes - w0
                steady_reads += reads.reads - r0
                steady_points += result.batch.accepted
                steady_seconds += seconds
        assert steady_points == series * (len(payloads) - 1), steady_points
        return {
            "writes_per_point": steady_writes / steady_points,
            "reads_per_point": steady_reads / steady_points,
            "points_per_s": steady_points / steady_seconds,
        }


_emulator_env: dict[str, Any] = {}


class _emulator:
    """A Firestore emulator for the bench (one for the run), emptied on entry."""

    def __enter__(self) -> None:
        from devtools.emulators import reset_firestore, start_firestore
        from devtools.processes import free_port

        os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "ion-ops-bench")
        os.environ["ION_METRICS_UPDATES_TOPIC"] = ""  # no Pub/Sub in the bench
        if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
            port = free_port()
            _emulator_env["process"] = start_firestore(
                port, log_dir=Path(__file__).resolve().parent.parent / ".run" / "bench-logs"
            )
            os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
        reset_firestore(os.environ["FIRESTORE_EMULATOR_HOST"], os.environ["GOOGLE_CLOUD_PROJECT"])
        from shared import firestore

        firestore.reset_clients()  # a client of an emulator stopped earlier in the run would linger

    def __exit__(self, *exc: object) -> None:
        return None


def stop_emulator() -> None:
    process = _emulator_env.pop("process", None)
    if process is not None:
        process.stop()
