"""Apply a ``Batch`` to the metric store exactly once.

A batch is identified by ``batch_id`` (the SHA-256 of the decoded payload, so an exporter's retry
of the same payload or a Pub/Sub redelivery has the same id). Its series are split into chunks of
at most ``ION_METRICS_TXN_WRITES`` document writes (whole series, in sid order, so the split is the
same on every attempt). Each chunk is one Firestore transaction that

1. reads the chunk's marker ``metric_batches/{hash(batch_id, chunk)}``: present means applied
   before, and the chunk is skipped;
2. reads the cumulative streams' last points and turns cumulative points into increments;
3. reads the minute and hour rollups of this writer shard, merges the batch's cells into them;
4. writes the rollups, the streams' states, new series and metric registry entries, and the marker.

Either all of a chunk is written or none of it; a failure raises, the caller's retry re-applies only
the chunks without a marker. Nothing is counted twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.ingestion.aggregate import MINUTE_NANOS, NANOS, Batch, Cell, SeriesBatch
from functions.ingestion.cumulative import resolve
from functions.ingestion.settings import get_ingestion_settings
from shared.clock import utcnow
from shared.firestore import get_firestore
from shared.logging import get_logger
from shared.metrics.store import (
    BATCHES,
    HOURS,
    METRICS,
    MINUTES,
    RETENTION,
    SERIES,
    SERIES_RETENTION,
    STREAMS,
    metric_id,
    rollup_id,
)

log = get_logger("ingestion.writer")

# Process caches: series known to exist in the registry (sid -> monotonic time of the refresh)
# and metrics already registered. A registry entry is refreshed (and its TTL pushed back) once a
# day per instance.
_known_series: dict[str, float] = {}
_known_metrics: set[str] = set()
REFRESH_SECONDS = 86_400.0


class CardinalityExceeded(Exception):
    """Every point of the batch was refused by the per-metric series limit."""

    def __init__(self, metrics: dict[str, int], limit: int) -> None:
        self.metrics = metrics
        self.limit = limit
        names = ", ".join(f"{m} ({n} series)" for m, n in sorted(metrics.items()))
        super().__init__(f"series limit of {limit} per metric reached by {names}")


@dataclass
class StoreOutcome:
    batch_id: str
    chunks: int = 0
    applied_chunks: int = 0
    duplicate_chunks: int = 0
    documents_written: int = 0
    written: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def reset_caches() -> None:
    _known_series.clear()
    _known_metrics.clear()


def _minute_of(t: int) -> int:
    return t // MINUTE_NANOS


def _dt(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


# --- cardinality ------------------------------------------------------------------------------


def enforce_cardinality(batch: Batch) -> None:
    """Refuse the points of new series past ``ION_METRICS_MAX_SERIES_PER_METRIC`` per metric."""
    limit = get_ingestion_settings().max_series_per_metric
    client = get_firestore()
    by_metric: dict[str, list[SeriesBatch]] = {}
    for series in batch.series.values():
        if series.sid not in _known_series:
            by_metric.setdefault(series.metric, []).append(series)
    for metric, unknown in by_metric.items():
        parent = client.collection(METRICS).document(metric_id(metric)).collection(SERIES)
        refs = [parent.document(s.sid) for s in unknown]
        existing = {snap.id for snap in client.get_all(refs, field_paths=["metric"]) if snap.exists}
        now = time.monotonic()
        for sid in existing:
            _known_series.setdefault(sid, now)
        new = sorted((s for s in unknown if s.sid not in existing), key=lambda s: s.sid)
        if not new:
            continue
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


# --- chunks -----------------------------------------------------------------------------------


def _cost(series: SeriesBatch) -> int:
    minutes = set(series.minutes)
    for points in series.streams.values():
        minutes.update(_minute_of(p.time) for p in points)
    hours = {m // 60 for m in minutes}
    return len(minutes) + len(hours) + len(series.streams) + 1


def chunk_series(all_series: Iterable[SeriesBatch], max_writes: int) -> list[list[SeriesBatch]]:
    chunks: list[list[SeriesBatch]] = []
    current: list[SeriesBatch] = []
    used = 0
    budget = max_writes - 1 - 8  # the marker and a few metric registry entries
    for series in sorted(all_series, key=lambda s: s.sid):
        cost = _cost(series)
        if current and used + cost > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(series)
        used += cost
    if current:
        chunks.append(current)
    return chunks


def marker_id(batch_id: str, chunk: int) -> str:
    return hashlib.sha256(f"{batch_id}:{chunk}".encode()).hexdigest()[:40]


def shard_of(batch_id: str, shards: int) -> int:
    return int(batch_id[:8], 16) % shards if shards > 1 else 0


# --- store ------------------------------------------------------------------------------------


def store_batch(batch: Batch, batch_id: str) -> StoreOutcome:
    """Write ``batch`` (already checked for cardinality) once; raises on failure (retry safe)."""
    settings = get_ingestion_settings()
    outcome = StoreOutcome(batch_id=batch_id)
    all_series = [s for s in batch.series.values() if s.minutes or s.streams]
    if not all_series:
        return outcome
    chunks = chunk_series(all_series, settings.max_writes_per_transaction)
    outcome.chunks = len(chunks)
    shard = shard_of(batch_id, settings.write_shards)
    for index, chunk in enumerate(chunks):
        result = _apply_chunk(batch, chunk, marker_id(batch_id, index), batch_id, shard)
        if result is None:
            outcome.duplicate_chunks += 1
            for series in chunk:
                outcome.written.setdefault(series.metric, []).append(series.labels)
            continue
        outcome.applied_chunks += 1
        outcome.documents_written += result.writes
        for metric, reason in result.refused:
            batch.reject(metric, reason)
            batch.accepted -= 1
        for metric, labels in result.written:
            outcome.written.setdefault(metric, []).append(labels)
        now = time.monotonic()
        for series in chunk:
            _known_series[series.sid] = _known_series.get(series.sid) or now
        _known_metrics.update(result.metrics_registered)
    return outcome


@dataclass
class _ChunkResult:
    writes: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (metric, reason)
    written: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    metrics_registered: set[str] = field(default_factory=set)


def _apply_chunk(
    batch: Batch, chunk: list[SeriesBatch], marker: str, batch_id: str, shard: int
) -> _ChunkResult | None:
    from google.cloud import firestore

    settings = get_ingestion_settings()
    client = get_firestore()
    marker_ref = client.collection(BATCHES).document(marker)
    stream_refs = {
        stream: client.collection(STREAMS).document(stream) for series in chunk for stream in series.streams
    }

    @firestore.transactional
    def apply(transaction: Any) -> _ChunkResult | None:
        result = _ChunkResult()
        if marker_ref.get(transaction=transaction).exists:
            return None
        now = utcnow()
        states: dict[str, dict[str, Any] | None] = dict.fromkeys(stream_refs)
        if stream_refs:
            for snap in client.get_all(list(stream_refs.values()), transaction=transaction):
                if snap.exists:
                    states[snap.id] = snap.to_dict()
        # Cells per series, minute and hour, with cumulative increments resolved.
        planned: list[tuple[SeriesBatch, str, int, Cell]] = []
        new_states: dict[str, dict[str, Any]] = {}
        for series in chunk:
            cells, stream_states, refused = resolve(series, states, _minute_of)
            new_states.update(stream_states)
            result.refused.extend((series.metric, reason) for reason in refused)
            hours: dict[int, Cell] = {}
            for minute, cell in cells.items():
                if not cell.count:
                    continue
                planned.append((series, MINUTES, minute * 60, cell))
                hour_cell = hours.get(minute // 60)
                if hour_cell is None:
                    hours[minute // 60] = cell.copy()
                else:
                    hour_cell.merge(cell)
            for hour, cell in hours.items():
                planned.append((series, HOURS, hour * 3600, cell))
            if hours:
                result.written.append((series.metric, series.labels))
        refs = []
        for series, collection, start, _cell in planned:
            parent = client.collection(METRICS).document(metric_id(series.metric)).collection(collection)
            refs.append(parent.document(rollup_id(series.sid, _dt(start), shard)))
        existing: dict[str, dict[str, Any]] = {}
        if refs:
            for snap in client.get_all(refs, transaction=transaction):
                if snap.exists:
                    existing[snap.reference.path] = snap.to_dict() or {}
        # Writes.
        for ref, (series, collection, start, cell) in zip(refs, planned, strict=True):
            stored = existing.get(ref.path)
            merged = Cell.from_fields(stored) if stored else Cell()
            merged.merge(cell)
            resolution = "minute" if collection == MINUTES else "hour"
            bucket = _dt(start)
            doc = {
                "metric": series.metric,
                "sid": series.sid,
                "labels": series.labels,
                "kind": series.kind,
                "t": bucket,
                "shard": shard,
                "expire_at": bucket + RETENTION[resolution],
                **merged.to_fields(),
            }
            transaction.set(ref, doc)
        stream_expiry = now + timedelta(days=settings.stream_memory_days)
        for stream, state in new_states.items():
            transaction.set(stream_refs[stream], {**state, "expire_at": stream_expiry})
        fresh = time.monotonic() - REFRESH_SECONDS
        registered = 0
        for series in chunk:
            refreshed = _known_series.get(series.sid)
            if refreshed is not None and refreshed > fresh:
                continue
            parent = client.collection(METRICS).document(metric_id(series.metric)).collection(SERIES)
            transaction.set(
                parent.document(series.sid),
                {
                    "metric": series.metric,
                    "labels": series.labels,
                    "kind": series.kind,
                    "last_seen": now,
                    "expire_at": now + SERIES_RETENTION,
                },
            )
            registered += 1
        for name in sorted({s.metric for s in chunk} - _known_metrics):
            info = batch.metrics.get(name)
            transaction.set(
                client.collection(METRICS).document(metric_id(name)),
                {
                    "name": name,
                    "kind": info.kind if info else "gauge",
                    "unit": info.unit if info else "",
                    "description": info.description if info else "",
                    "updated": now,
                },
            )
            result.metrics_registered.add(name)
        transaction.set(
            marker_ref,
            {
                "batch_id": batch_id,
                "applied_at": now,
                "expire_at": now + timedelta(days=settings.batch_memory_days),
            },
        )
        result.writes = len(refs) + len(new_states) + registered + len(result.metrics_registered) + 1
        return result

    return apply(client.transaction(max_attempts=8))


def span(batch: Batch) -> tuple[datetime, datetime]:
    return (
        datetime.fromtimestamp(batch.min_t / NANOS, UTC),
        datetime.fromtimestamp(batch.max_t / NANOS, UTC),
    )
