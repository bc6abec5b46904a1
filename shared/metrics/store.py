"""The metric store's Firestore layout, shared by the writer (ingestion) and the readers (query).

::

    metrics/{metric_id}                      name, kind, unit, description, updated
    metrics/{metric_id}/metric_series/{sid}  labels, first_seen, expire_at (90 d after refresh)
    metrics/{metric_id}/metric_minutes/{id}  one minute rollup of one series from one writer shard
    metrics/{metric_id}/metric_hours/{id}    one hour rollup of one series, folded from its minutes
    metric_folds/{metric_id}                 the downsampler's watermark and cursor for the metric
    metric_streams/{stream}                  last cumulative value per OTLP stream, expire_at

A rollup holds ``count``, ``sum``, ``min``, ``max``, ``last`` (and ``last_t``), ``sk`` (the
compressed DDSketch, see ``sketch.py``), ``labels``, ``sid``, ``kind``, ``t`` (bucket start),
``shard`` and ``expire_at`` (TTL: minutes 72 h, hours 90 days after the bucket). Minute rollups
and stream states also hold ``applied``: the batches applied to them (exactly-once, see the
ingestion writer).

Hours are not written by ingestion: the downsampler folds the minute rollups of each closed hour
into one hour rollup per series, and advances the metric's ``folded_until`` once every series is
folded. Readers take hours before ``folded_until`` from ``metric_hours`` and later hours from
``metric_minutes`` (``folded_until``), so an hour is never counted twice nor missed.

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
STREAMS = "metric_streams"
FOLDS = "metric_folds"
# Field of minute rollups and stream states listing the batches applied to them.
APPLIED = "applied"

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


def hour_ceil(at: datetime) -> datetime:
    start = bucket_start(at, "hour")
    return start if start == at else start + timedelta(hours=1)


def rollup_id(sid: str, start: datetime, shard: int) -> str:
    # Epoch seconds have 10 digits until 2286, so ids of one series sort by time: a series' rollups
    # over [a, b) are the ids in [rollup_prefix(sid, a), rollup_prefix(sid, b)).
    return f"{rollup_prefix(sid, start)}-{shard}"


def rollup_prefix(sid: str, start: datetime) -> str:
    return f"{sid}-{int(start.timestamp())}"


def sid_of(rollup: str) -> str:
    return rollup.split("-", 1)[0]


def complete_minutes_since(now: datetime) -> datetime:
    """The first hour whose minute rollups are all still retained (not yet due for TTL)."""
    return hour_ceil(now - RETENTION["minute"])


def folded_until(metric: str, now: datetime) -> datetime:
    """Hours before this are in ``metric_hours``; later ones only in ``metric_minutes``.

    Before the downsampler's first pass over a metric, the hours whose minutes are all retained
    are read from minutes (a metric written since hour rollups stopped being written inline has
    no hour rollups yet), older hours from whatever hour rollups exist."""
    from shared.firestore import get_firestore

    snapshot = get_firestore().collection(FOLDS).document(metric_id(metric)).get(field_paths=["folded_until"])
    if snapshot.exists:
        value = (snapshot.to_dict() or {}).get("folded_until")
        if isinstance(value, datetime):
            return value
    return complete_minutes_since(now)


def metric_ref(metric: str):  # type: ignore[no-untyped-def]
    from shared.firestore import get_firestore

    return get_firestore().collection(METRICS).document(metric_id(metric))


def rollups(metric: str, resolution: str):  # type: ignore[no-untyped-def]
    return metric_ref(metric).collection(SUBCOLLECTION[resolution])


def series_collection(metric: str):  # type: ignore[no-untyped-def]
    return metric_ref(metric).collection(SERIES)
