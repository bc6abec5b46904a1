"""The series registry: which bucket each series of a metric is in, and the per-metric series limit.

Registration (``register_series``, before anything is applied): series not known to this
instance are looked up in the registry (``metric_series``), which gives their bucket; new ones
past the per-metric series limit are refused, the others are registered in one transaction per
metric that assigns each to the metric's open bucket (``bucket_open``/``bucket_fill`` on the
metric document), opening the next one once ``ION_METRICS_BUCKET_SERIES`` are in it. A series
keeps its bucket for as long as its registry entry lives (90 days after it was last seen, so
longer than any of its rollups). A registry entry is refreshed once a day.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from functions.ingestion.aggregate import Batch, SeriesBatch
from functions.ingestion.settings import get_ingestion_settings
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction
from shared.metrics.store import METRICS, SERIES, SERIES_RETENTION, metric_id

# Process cache: sid -> (its bucket, monotonic time it was read from or written to the registry).
# An entry older than a day is looked up again, and the registry entry refreshed if due.
_known_series: dict[str, tuple[int, float]] = {}
REFRESH_SECONDS = 86_400.0


class CardinalityExceeded(Exception):
    """Every point of the batch was refused by the per-metric series limit."""

    def __init__(self, metrics: dict[str, int], limit: int) -> None:
        self.metrics = metrics
        self.limit = limit
        names = ", ".join(f"{m} ({n} series)" for m, n in sorted(metrics.items()))
        super().__init__(f"series limit of {limit} per metric reached by {names}")


def reset_caches() -> None:
    _known_series.clear()


def register_series(batch: Batch) -> int:
    """Know the bucket of every series of ``batch``: look up the ones this instance does not know,
    refuse new series past ``ION_METRICS_MAX_SERIES_PER_METRIC`` per metric, register the others in
    their buckets, and refresh registry entries last seen more than a day ago. Returns the number
    of registry writes."""
    settings = get_ingestion_settings()
    limit = settings.max_series_per_metric
    client = get_firestore()
    stale = time.monotonic() - REFRESH_SECONDS
    by_metric: dict[str, list[SeriesBatch]] = {}
    for series in batch.series.values():
        known = _known_series.get(series.sid)
        if known is None or known[1] <= stale:
            by_metric.setdefault(series.metric, []).append(series)
    now = utcnow()
    writes = 0
    for metric, unknown in by_metric.items():
        parent = client.collection(METRICS).document(metric_id(metric)).collection(SERIES)
        refs = [parent.document(s.sid) for s in unknown]
        found = {
            snap.id: snap.to_dict() or {}
            for snap in client.get_all(refs, field_paths=["bucket", "last_seen"])
            if snap.exists
        }
        read_at = time.monotonic()
        refresh = []
        new = []
        for series in unknown:
            doc = found.get(series.sid)
            if doc is None or not isinstance(doc.get("bucket"), int):
                # Never registered, or its entry expired (silent for 90 days, so is every rollup
                # of it): registered afresh, in whichever bucket is open.
                _known_series.pop(series.sid, None)
                new.append(series)
                continue
            _known_series[series.sid] = (doc["bucket"], read_at)
            last_seen = doc.get("last_seen")
            if not isinstance(last_seen, datetime) or now - last_seen >= timedelta(seconds=REFRESH_SECONDS):
                refresh.append(parent.document(series.sid))
        new.sort(key=lambda s: s.sid)
        if new:
            count = int(parent.count().get()[0][0].value)
            room = max(0, limit - count)
            for series in new[room:]:
                del batch.series[series.sid]
                batch.accepted -= series.points
                batch.reject(
                    metric,
                    f"series limit reached: {metric} has {count} series, the limit is {limit} "
                    "(ION_METRICS_MAX_SERIES_PER_METRIC)",
                    series.points,
                )
            if new[:room]:
                writes += _register(batch, metric, new[:room])
        for start in range(0, len(refresh), settings.max_writes_per_transaction):
            # A refresh only pushes the TTL back: merged, so the bucket and labels stay as they are.
            write = client.batch()
            for ref in refresh[start : start + settings.max_writes_per_transaction]:
                write.set(ref, {"last_seen": now, "expire_at": now + SERIES_RETENTION}, merge=True)
            write.commit()
        writes += len(refresh)
    return writes


def _register(batch: Batch, metric: str, new: list[SeriesBatch]) -> int:
    """Register ``new`` series of ``metric`` in the metric's open bucket(s), in transactions that
    read and move the metric's bucket state, so that concurrent registrations never overfill a
    bucket, and a series registered meanwhile by another instance keeps the bucket it got."""

    settings = get_ingestion_settings()
    client = get_firestore()
    metric_doc = client.collection(METRICS).document(metric_id(metric))
    parent = metric_doc.collection(SERIES)
    info = batch.metrics.get(metric)
    size = settings.max_writes_per_transaction - 1
    writes = 0
    for start in range(0, len(new), size):
        part = new[start : start + size]
        refs = {series.sid: parent.document(series.sid) for series in part}

        def register(
            transaction: Any, part: list[SeriesBatch] = part, refs: dict[str, Any] = refs
        ) -> tuple[dict[str, int], int]:
            snaps = {
                snap.reference.path: snap.to_dict() or {}
                for snap in client.get_all([metric_doc, *refs.values()], transaction=transaction)
                if snap.exists
            }
            state = snaps.get(metric_doc.path, {})
            open_bucket = int(state.get("bucket_open") or 0)
            fill = int(state.get("bucket_fill") or 0)
            now = utcnow()
            assigned: dict[str, int] = {}
            written = 0
            for series in part:
                existing = snaps.get(refs[series.sid].path, {}).get("bucket")
                if isinstance(existing, int):
                    assigned[series.sid] = existing
                    continue
                if fill >= settings.bucket_series:
                    open_bucket, fill = open_bucket + 1, 0
                fill += 1
                written += 1
                assigned[series.sid] = open_bucket
                transaction.set(
                    refs[series.sid],
                    {
                        "metric": series.metric,
                        "labels": series.labels,
                        "kind": series.kind,
                        "bucket": open_bucket,
                        "last_seen": now,
                        "expire_at": now + SERIES_RETENTION,
                    },
                )
            about = {"kind": info.kind, "unit": info.unit, "description": info.description} if info else {}
            transaction.set(
                metric_doc,
                {"name": metric, **about, "updated": now, "bucket_open": open_bucket, "bucket_fill": fill},
                merge=True,
            )
            return assigned, written + 1

        assigned, written = run_transaction(register)
        registered_at = time.monotonic()
        for sid, bucket in assigned.items():
            _known_series[sid] = (bucket, registered_at)
        writes += written
    return writes


def bucket_of(sid: str) -> int:
    known = _known_series.get(sid)
    if known is None:
        raise LookupError(f"series {sid} is not registered: register_series(batch) comes first")
    return known[0]
