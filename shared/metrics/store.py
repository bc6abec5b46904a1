"""The metric store's Firestore layout, shared by the writer (ingestion) and the readers (query).

::

    metrics/{metric_id}                      name, kind, unit, description, updated
    metrics/{metric_id}/metric_series/{sid}  labels, first_seen, expire_at (90 d after refresh)
    metrics/{metric_id}/metric_minutes/{id}  one minute rollup of one series from one writer shard
    metrics/{metric_id}/metric_hours/{id}    the same per hour
    metric_batches/{marker}                  applied batch chunks (exactly-once), expire_at
    metric_streams/{stream}                  last cumulative value per OTLP stream, expire_at

A rollup holds ``count``, ``sum``, ``min``, ``max``, ``last`` (and ``last_t``), ``sk`` (the
compressed DDSketch, see ``sketch.py``), ``labels``, ``sid``, ``kind``, ``t`` (bucket start),
``shard`` and ``expire_at`` (TTL: minutes 72 h, hours 90 days after the bucket).

Ids: ``metric_id`` and ``sid`` are hashes, and a rollup id starts with its ``sid``, so ids are
never monotonic. A rollup is sharded by writer (``shard`` = hash of the batch mod
``ION_METRICS_WRITE_SHARDS``) so that concurrent writers of the same hot series spread over
several documents; readers merge the shards. The only range query is on ``t`` inside one
metric's subcollection, which Firestore's automatic single-field index serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

METRICS = "metrics"
SERIES = "metric_series"
MINUTES = "metric_minutes"
HOURS = "metric_hours"
BATCHES = "metric_batches"
STREAMS = "metric_streams"

Resolution = Literal["minute", "hour"]
RESOLUTION_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600}
SUBCOLLECTION: dict[str, str] = {"minute": MINUTES, "hour": HOURS}
RETENTION: dict[str, timedelta] = {"minute": timedelta(hours=72), "hour": timedelta(days=90)}
SERIES_RETENTION = timedelta(days=90)

Kind = Literal["gauge", "sum", "histogram"]
# Fields of a rollup that every aggregation except percentiles needs (the sketch is skipped).
SUMMARY_FIELDS = ["sid", "labels", "kind", "t", "count", "sum", "min", "max", "last", "last_t"]


def _digest(text: str, size: int = 20) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size // 2).hexdigest()


def metric_id(metric: str) -> str:
    """Firestore id of a metric: metric names hold '/' and '.', and readable ids are not needed."""
    return _digest(metric, 20)


def series_key(labels: Mapping[str, str]) -> str:
    """Canonical text of a label set (sorted), used for series identity."""
    return "\x1f".join(f"{k}\x1e{labels[k]}" for k in sorted(labels))


def series_id(metric: str, labels: Mapping[str, str]) -> str:
    return _digest(metric + "\x1d" + series_key(labels), 24)


def bucket_start(at: datetime, resolution: str) -> datetime:
    seconds = RESOLUTION_SECONDS[resolution]
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def rollup_id(sid: str, start: datetime, shard: int) -> str:
    return f"{sid}-{int(start.timestamp())}-{shard}"


def metric_ref(metric: str):  # type: ignore[no-untyped-def]
    from shared.firestore import get_firestore

    return get_firestore().collection(METRICS).document(metric_id(metric))


def rollups(metric: str, resolution: str):  # type: ignore[no-untyped-def]
    return metric_ref(metric).collection(SUBCOLLECTION[resolution])


def series_collection(metric: str):  # type: ignore[no-untyped-def]
    return metric_ref(metric).collection(SERIES)
