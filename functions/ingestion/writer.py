"""Apply a ``Batch`` to the metric store exactly once (its series registered first: ``series_registry.py``).

Applying: a batch is identified by ``batch_id`` (the SHA-256 of the decoded payload, so an
exporter's retry of the same payload or a Pub/Sub redelivery has the same id). It is cut into
units (``write_units.py``), each applied whole by one transaction and recognised whole on a retry:

- a *cells unit*: the batch's gauge, delta and histogram cells of one bucket and minute, that is
  one rollup document (this writer shard's); it is applied iff that document lists the batch in
  ``applied``, an entry written in the same transaction as the cells (a series of a retry that
  the document does not hold at all was not in the applied unit, and is applied then). Its gauge
  samples and delta sum increments are also recognised one by one by their stream and time
  (``point_keys.py``), so a retry that re-batches them is not counted twice: for that, the writer
  shard is chosen by the batch's senders (its resources), not by its content;
- a *stream unit*: the cumulative points of one sender's streams in one bucket, turned into
  increments against the streams' last points (kept together in one ``metric_stream_groups``
  document: ``stream_groups.py``) and merged into the bucket's rollups; it is applied iff that
  document lists the batch, written in the same transaction (a stream the document does not hold
  was not in that unit, and is applied then).

A retry carries the same units or fewer points in them (points that became late are refused),
never a point an applied unit did not carry, so these checks hold however a retry splits the
batch into transactions. Units are packed into transactions of at most
``ION_METRICS_TXN_WRITES`` writes and ``TXN_DOCUMENTS`` documents (a commit carries at most
10 MiB). Each transaction (``chunk_transaction.py``) reads every document it may write, skips
the units already applied, merges the others' cells into the bucket documents and writes them.
An entry is kept while a retry could still be accepted: a retry's points are refused once older
than the lateness allowance (``ION_METRICS_MAX_AGE_SECONDS``), and a minute is not written after
that either.

Each rollup write also merges its write stamp into its hour's stamp document (one per bucket, hour
and writer shard: ``stamps.MINUTE_STAMPS``) in the same transaction, without reading it: so a
transaction writes at most twice its rollups, and builds learn which rollups exist from them.

Hour rollups are not written here: the downsampler (``downsample.py``) folds closed hours from the
minute rollups, once the lateness allowance guarantees no point can land in them any more.

Either all of a transaction is written or none of it; a failure raises, the caller's retry
re-applies only the units not yet applied. Nothing is counted twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from google.api_core.exceptions import InvalidArgument

from functions.ingestion.aggregate import Batch, SeriesBatch
from functions.ingestion.chunk_transaction import ChunkResult, apply_chunk
from functions.ingestion.settings import get_ingestion_settings
from functions.ingestion.write_units import Unit, chunk_units, shard_of, units_of
from shared.logging import get_logger

log = get_logger("ingestion.writer")


@dataclass
class StoreOutcome:
    batch_id: str
    chunks: int = 0
    applied_series: int = 0
    duplicate_series: int = 0
    documents_written: int = 0
    written: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def store_batch(batch: Batch, batch_id: str, *, by_content: bool = False) -> StoreOutcome:
    """Write ``batch`` (its series registered by ``register_series``) once; raises on failure
    (retry safe). ``by_content``: ``batch_id`` is the payload's hash, so the writer shard is
    chosen by the batch's senders instead (a re-batched retry of theirs meets its point keys)."""
    settings = get_ingestion_settings()
    outcome = StoreOutcome(batch_id=batch_id)
    units = units_of(batch)
    if not units:
        return outcome
    # Each rollup written brings at most one stamp document write.
    chunks = chunk_units(units, settings.max_writes_per_transaction // 2)
    outcome.chunks = len(chunks)
    shard = shard_of(senders_id(batch) if by_content else batch_id, settings.write_shards)
    applied: dict[str, SeriesBatch] = {}
    duplicates: dict[str, SeriesBatch] = {}
    for chunk in chunks:
        try:
            result = apply_chunk(chunk, batch_id, shard)
        except InvalidArgument as exc:
            # Firestore refuses what it will always refuse (a document over its size, a value it
            # cannot store): a retry cannot help, so the chunk's points are refused, not retried.
            log.error("Firestore refused a chunk of a metric batch: %s", exc, extra={"batch_id": batch_id})
            result = ChunkResult(refused=_refuse_chunk(chunk, f"Firestore refused the write: {_short(exc)}"))
        outcome.documents_written += result.writes
        for metric, reason, points in result.refused:
            batch.reject(metric, reason, points)
            batch.accepted -= points
        applied.update((s.sid, s) for s in result.written)
        duplicates.update((s.sid, s) for s in result.duplicates)
    outcome.applied_series = len(applied)
    outcome.duplicate_series = len(duplicates.keys() - applied.keys())
    # Duplicates are announced again: the first announcement may have failed after the write.
    for sid in sorted(applied.keys() | duplicates.keys()):
        series = applied.get(sid) or duplicates[sid]
        outcome.written.setdefault(series.metric, []).append(series.labels)
    return outcome


def senders_id(batch: Batch) -> str:
    """A hash (hex) of the resources that sent ``batch``: whatever shape an exporter gives a retry,
    its points land in the writer shard they landed in before."""
    return hashlib.sha256("\x1d".join(sorted(batch.senders)).encode()).hexdigest()


def _short(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message if len(message) <= 200 else message[:200] + "..."


def _unit_points(unit: Unit) -> int:
    if unit.stream:
        return sum(len(series.streams[s]) for series in unit.series for s in unit.streams_of(series))
    minute = unit.minutes[0]
    return sum(series.minutes[minute].points for series in unit.series if minute in series.minutes)


def _refuse_chunk(chunk: list[Unit], reason: str) -> list[tuple[str, str, int]]:
    return [(unit.series[0].metric, reason, n) for unit in chunk if (n := _unit_points(unit))]
