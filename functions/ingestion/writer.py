"""Apply a ``Batch`` to the metric store exactly once.

A batch is identified by ``batch_id`` (the SHA-256 of the decoded payload, so an exporter's retry
of the same payload or a Pub/Sub redelivery has the same id). Its series are split into chunks of
at most ``ION_METRICS_TXN_WRITES`` document writes (whole series). Each chunk is one Firestore
transaction that

1. reads every document the chunk may write: the minute rollups of this writer shard for each
   series' minutes and the cumulative streams' last points;
2. skips each series whose documents already list the batch in ``applied`` (a retry or
   redelivery: that series was applied before, all of it, by an earlier transaction);
3. turns cumulative points into increments and merges the batch's cells into the minute rollups;
4. writes the rollups and stream states, each listing the batch in ``applied``, and new series
   and metric registry entries.

So the record that a batch was applied lives in the documents it changed, written in the same
transaction: no marker document per chunk (one write fewer per transaction), and the check is per
series, so it holds however a retry splits the batch into chunks. A series' entries are kept while
a retry could still be accepted: a retry's points are refused once older than the lateness
allowance (``ION_METRICS_MAX_AGE_SECONDS``), and a minute is not written after that either.

Hour rollups are not written here: the downsampler (``downsample.py``) folds closed hours from the
minute rollups, once the lateness allowance guarantees no point can land in them any more.

Either all of a chunk is written or none of it; a failure raises, the caller's retry re-applies only
the series not yet applied. Nothing is counted twice.
"""

from __future__ import annotations

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
    APPLIED,
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
    applied_series: int = 0
    duplicate_series: int = 0
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


def _minutes(series: SeriesBatch) -> set[int]:
    """Every minute the series may write: its cells' and its cumulative points'."""
    minutes = set(series.minutes)
    for points in series.streams.values():
        minutes.update(_minute_of(p.time) for p in points)
    return minutes


def _cost(series: SeriesBatch) -> int:
    return len(_minutes(series)) + len(series.streams) + 1


def chunk_series(all_series: Iterable[SeriesBatch], max_writes: int) -> list[list[SeriesBatch]]:
    chunks: list[list[SeriesBatch]] = []
    current: list[SeriesBatch] = []
    used = 0
    budget = max_writes - 8  # room for a few metric registry entries
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


# 96 bits of the batch's hash: unique among the batches one document sees within the lateness
# allowance, and short, since a hot minute rollup lists every batch that wrote it.
TOKEN_CHARS = 24


def applied_token(batch_id: str) -> str:
    return batch_id[:TOKEN_CHARS]


def _entry(token: str, until: int) -> str:
    """An ``applied`` entry: the batch and the end (epoch s) of the series' latest minute in it."""
    return f"{token}@{until}"


def _lists(doc: dict[str, Any] | None, token: str) -> bool:
    prefix = token + "@"
    return any(entry.startswith(prefix) for entry in (doc or {}).get(APPLIED) or ())


def _kept(doc: dict[str, Any] | None, oldest: int) -> list[str]:
    """The entries of ``doc`` a retry could still need: a retry of a batch whose latest point is
    older than the lateness allowance has every point refused, so its entry can go."""
    kept = []
    for entry in (doc or {}).get(APPLIED) or ():
        _, _, until = entry.partition("@")
        if until.isdigit() and int(until) >= oldest:
            kept.append(entry)
    return kept


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
    for chunk in chunks:
        result = _apply_chunk(batch, chunk, batch_id, shard)
        outcome.applied_series += len(chunk) - len(result.duplicates)
        outcome.duplicate_series += len(result.duplicates)
        outcome.documents_written += result.writes
        for metric, reason in result.refused:
            batch.reject(metric, reason)
            batch.accepted -= 1
        for metric, labels in result.written:
            outcome.written.setdefault(metric, []).append(labels)
        for series in chunk:
            if series.sid in result.duplicates:
                # Announced again: the first announcement may have failed after the write.
                outcome.written.setdefault(series.metric, []).append(series.labels)
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
    duplicates: set[str] = field(default_factory=set)  # sids applied by an earlier delivery
    metrics_registered: set[str] = field(default_factory=set)


def _apply_chunk(batch: Batch, chunk: list[SeriesBatch], batch_id: str, shard: int) -> _ChunkResult:
    from google.cloud import firestore

    settings = get_ingestion_settings()
    client = get_firestore()
    token = applied_token(batch_id)
    stream_refs = {
        stream: client.collection(STREAMS).document(stream) for series in chunk for stream in series.streams
    }
    # Every minute rollup each series may write (cumulative points may turn out refused, but the
    # document is read either way: it may list this batch).
    minute_refs: dict[str, dict[int, Any]] = {}
    for series in chunk:
        parent = client.collection(METRICS).document(metric_id(series.metric)).collection(MINUTES)
        minute_refs[series.sid] = {
            minute: parent.document(rollup_id(series.sid, _dt(minute * 60), shard))
            for minute in sorted(_minutes(series))
        }
    all_refs = list(stream_refs.values()) + [ref for refs in minute_refs.values() for ref in refs.values()]

    @firestore.transactional
    def apply(transaction: Any) -> _ChunkResult:
        result = _ChunkResult()
        now = utcnow()
        # Entries older than the lateness allowance (and the grace for clock skew) are dropped.
        oldest = int(now.timestamp()) - settings.fold_delay_seconds
        docs: dict[str, dict[str, Any]] = {}
        for snap in client.get_all(all_refs, transaction=transaction):
            if snap.exists:
                docs[snap.reference.path] = snap.to_dict() or {}
        writes: list[tuple[Any, dict[str, Any]]] = []
        for series in chunk:
            refs = minute_refs[series.sid]
            own = [docs.get(ref.path) for ref in refs.values()]
            own += [docs.get(stream_refs[stream].path) for stream in series.streams]
            if any(_lists(doc, token) for doc in own):
                result.duplicates.add(series.sid)
                continue
            states = {stream: docs.get(stream_refs[stream].path) for stream in series.streams}
            cells, new_states, refused = resolve(series, states, _minute_of)
            result.refused.extend((series.metric, reason) for reason in refused)
            minutes = [m for m, cell in cells.items() if cell.count]
            if not minutes and not new_states:
                continue
            entry = _entry(token, (max(_minutes(series)) + 1) * 60)
            for minute in sorted(minutes):
                ref = refs[minute]
                stored = docs.get(ref.path)
                merged = Cell.from_fields(stored) if stored else Cell()
                merged.merge(cells[minute])
                bucket = _dt(minute * 60)
                doc = {
                    "metric": series.metric,
                    "sid": series.sid,
                    "labels": series.labels,
                    "kind": series.kind,
                    "t": bucket,
                    "shard": shard,
                    "expire_at": bucket + RETENTION["minute"],
                    APPLIED: [*_kept(stored, oldest), entry],
                    **merged.to_fields(),
                }
                writes.append((ref, doc))
            stream_expiry = now + timedelta(days=settings.stream_memory_days)
            for stream, state in new_states.items():
                stored = docs.get(stream_refs[stream].path)
                writes.append(
                    (
                        stream_refs[stream],
                        {**state, "expire_at": stream_expiry, APPLIED: [*_kept(stored, oldest), entry]},
                    )
                )
            if minutes:
                result.written.append((series.metric, series.labels))
        fresh = time.monotonic() - REFRESH_SECONDS
        for series in chunk:
            refreshed = _known_series.get(series.sid)
            if refreshed is not None and refreshed > fresh:
                continue
            parent = client.collection(METRICS).document(metric_id(series.metric)).collection(SERIES)
            writes.append(
                (
                    parent.document(series.sid),
                    {
                        "metric": series.metric,
                        "labels": series.labels,
                        "kind": series.kind,
                        "last_seen": now,
                        "expire_at": now + SERIES_RETENTION,
                    },
                )
            )
        for name in sorted({s.metric for s in chunk} - _known_metrics):
            info = batch.metrics.get(name)
            writes.append(
                (
                    client.collection(METRICS).document(metric_id(name)),
                    {
                        "name": name,
                        "kind": info.kind if info else "gauge",
                        "unit": info.unit if info else "",
                        "description": info.description if info else "",
                        "updated": now,
                    },
                )
            )
            result.metrics_registered.add(name)
        for ref, doc in writes:
            transaction.set(ref, doc)
        result.writes = len(writes)
        return result

    return apply(client.transaction(max_attempts=8))


def span(batch: Batch) -> tuple[datetime, datetime]:
    return (
        datetime.fromtimestamp(batch.min_t / NANOS, UTC),
        datetime.fromtimestamp(batch.max_t / NANOS, UTC),
    )
