"""One chunk of a batch's units applied in one Firestore transaction (``writer.py`` says how
units make a batch apply exactly once): every document the units may write read, the units already
applied skipped, the others' cells merged into their minute rollups within the document size limit
(the points that would push one past are refused), and each rollup's hour stamp merged."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.ingestion.aggregate import Cell, SeriesBatch
from functions.ingestion.point_keys import CONFLICT, POINT_KEYS, check
from functions.ingestion.settings import get_ingestion_settings
from functions.ingestion.stream_groups import apply_streams, missing_streams
from functions.ingestion.write_units import Unit, applied_entry, applied_token, kept_entries, lists_batch
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction
from shared.metrics.stamps import (
    MINUTE_STAMPS,
    minute_key,
    stamps_document,
)
from shared.metrics.store import (
    METRICS,
    MINUTES,
    SERIES_MAP,
    SKETCHES,
    STREAM_GROUPS,
    STREAMS,
    WRITE_STAMP,
    bucket_start,
    document_size,
    metric_id,
    rollup_document,
    rollup_id,
    stored_size,
    write_stamp,
)


def _dt(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def _too_large(what: str, size: int, limit: int) -> str:
    return (
        f"{what} would grow to {size:,} bytes, over ION_METRICS_MAX_DOCUMENT_BYTES ({limit:,}); "
        "send fewer or shorter labels, or fewer histogram buckets"
    )


@dataclass
class ChunkResult:
    """What one chunk's transaction wrote (documents and series), found applied, and refused."""

    writes: int = 0
    refused: list[tuple[str, str, int]] = field(default_factory=list)  # (metric, reason, points)
    written: list[SeriesBatch] = field(default_factory=list)  # series with cells applied
    duplicates: list[SeriesBatch] = field(default_factory=list)  # in units applied before


@dataclass
class _Rollup:
    """A bucket document being rewritten: the cells added to it, and whether it gets an entry."""

    ref: Any
    unit: Unit
    minute: int
    cells: dict[str, tuple[SeriesBatch, Cell]] = field(default_factory=dict)
    entry: str | None = None
    keys: dict[str, bytes] = field(default_factory=dict)  # series id -> its point keys to store

    def add(self, series: SeriesBatch, cell: Cell) -> None:
        if not cell.count:
            return
        held = self.cells.get(series.sid)
        if held is None:
            held = self.cells[series.sid] = (series, Cell())
        held[1].merge(cell)


def apply_chunk(chunk: list[Unit], batch_id: str, shard: int) -> ChunkResult:
    """Apply ``chunk`` in one transaction (retried on contention by ``run_transaction``): what
    it wrote, found applied before and refused."""
    settings = get_ingestion_settings()
    max_bytes = settings.max_document_bytes
    client = get_firestore()
    token = applied_token(batch_id)
    groups = client.collection(STREAM_GROUPS)
    group_refs = {unit.group_id: groups.document(unit.group_id) for unit in chunk if unit.stream}
    # Every rollup a unit may write (cumulative points may turn out refused, but the document is
    # read either way: a cells unit's may list this batch).
    rollup_refs: dict[tuple[str, int], Any] = {}
    for unit in chunk:
        parent = client.collection(METRICS).document(metric_id(unit.series[0].metric)).collection(MINUTES)
        for minute in unit.minutes:
            if (unit.key, minute) not in rollup_refs:
                rollup_refs[(unit.key, minute)] = parent.document(
                    rollup_id(unit.key, _dt(minute * 60), shard)
                )
    all_refs = list(group_refs.values()) + list(rollup_refs.values())

    def apply(transaction: Any) -> ChunkResult:
        result = ChunkResult()
        now = utcnow()
        # Entries older than the lateness allowance (and the grace for clock skew) are dropped.
        oldest = int(now.timestamp()) - settings.fold_delay_seconds
        docs: dict[str, dict[str, Any]] = {}
        for snap in client.get_all(all_refs, transaction=transaction):
            if snap.exists:
                docs[snap.reference.path] = snap.to_dict() or {}
        # States stored per stream before groups existed, for the streams groups do not hold yet.
        missing = [
            stream
            for unit in chunk
            if unit.stream
            for stream in missing_streams(unit, docs.get(group_refs[unit.group_id].path))
        ]
        legacy: dict[str, dict[str, Any]] = {}
        if missing:
            legacy_refs = [client.collection(STREAMS).document(stream) for stream in missing]
            for snap in client.get_all(legacy_refs, transaction=transaction):
                if snap.exists:
                    legacy[snap.id] = snap.to_dict() or {}
        rollups: dict[tuple[str, int], _Rollup] = {}
        refused_sids: set[str] = set()

        def rollup(unit: Unit, minute: int) -> _Rollup:
            found = rollups.get((unit.key, minute))
            if found is None:
                found = rollups[(unit.key, minute)] = _Rollup(rollup_refs[(unit.key, minute)], unit, minute)
            return found

        writes: list[tuple[Any, dict[str, Any]]] = []
        # Stamp documents to merge, per bucket key and hour: (bucket, minute -> the rollup's ws).
        stamps: dict[tuple[str, datetime], tuple[Any, int, dict[str, int]]] = {}
        for unit in chunk:
            if not unit.stream:
                minute = unit.minutes[0]
                stored = docs.get(rollup_refs[(unit.key, minute)].path)
                target = rollup(unit, minute)
                fresh = unit.series
                if lists_batch(stored, token):
                    # Applied before. A series absent from the document was not in that unit
                    # (its points were refused then, e.g. by the series limit): it is applied now.
                    present = (stored or {}).get(SERIES_MAP) or {}
                    fresh = [series for series in unit.series if series.sid not in present]
                    result.duplicates.extend(series for series in unit.series if series.sid in present)
                else:
                    target.entry = applied_entry(token, (minute + 1) * 60)
                held = (stored or {}).get(POINT_KEYS) or {}
                for series in fresh:
                    checked = check(series.minutes[minute], held.get(series.sid))
                    if checked.conflicts:
                        result.refused.append((series.metric, CONFLICT, checked.conflicts))
                    if checked.keys is not None:
                        target.keys[series.sid] = checked.keys
                    target.add(series, checked.cell)
                result.written.extend(fresh)
                continue
            group_ref = group_refs[unit.group_id]

            def too_large(document: dict[str, Any], path: str = group_ref.path) -> str | None:
                size = document_size(path, document)
                if size <= max_bytes:
                    return None
                return _too_large("the stream states of a sender's series in one bucket", size, max_bytes)

            outcome = apply_streams(
                unit,
                docs.get(group_ref.path),
                legacy,
                token,
                now,
                memory=timedelta(days=settings.stream_memory_days),
                oldest=oldest,
                too_large=too_large,
            )
            result.refused.extend(outcome.refused)
            result.duplicates.extend(outcome.duplicates)
            for series, cells in outcome.cells:
                for minute, cell in cells.items():
                    rollup(unit, minute).add(series, cell)
                if any(cell.count for cell in cells.values()):
                    result.written.append(series)
            if outcome.document is not None:
                writes.append((group_refs[unit.group_id], outcome.document))
        for target in rollups.values():
            if not target.cells and target.entry is None:
                continue
            stored = docs.get(target.ref.path) or {}
            summaries: dict[str, Any] = dict(stored.get(SERIES_MAP) or {})
            sketches: dict[str, Any] = dict(stored.get(SKETCHES) or {})
            point_keys: dict[str, bytes] = dict(stored.get(POINT_KEYS) or {})
            at = _dt(target.minute * 60)
            entries = kept_entries(stored, oldest) + ([target.entry] if target.entry else [])
            document = rollup_document(
                target.unit.series[0].metric,
                target.unit.bucket,
                at,
                shard,
                "minute",
                summaries,
                sketches,
                applied=entries,
            )
            # Every write raises the stamp: the downsampler tells whether minutes changed from
            # one aggregation over the stamps (``store.minutes_stamp``) ...
            document[WRITE_STAMP] = write_stamp(at, stored.get(WRITE_STAMP))
            # ... and so does the hour's stamp document, merged in this transaction (not read:
            # the stamp is the rollup's own), so it names every rollup a reader must read.
            hour = bucket_start(at, "hour")
            metric_doc = target.ref.parent.parent
            _, _, minutes = stamps.setdefault((target.unit.key, hour), (metric_doc, target.unit.bucket, {}))
            minutes[minute_key(at)] = document[WRITE_STAMP]
            if point_keys or target.keys:
                document[POINT_KEYS] = point_keys  # filled below, sized with the rest
            # Each series' entry is added while the document stays within the size limit; the
            # points of one that would push it past are refused (the others are still written).
            size = document_size(target.ref.path, document)
            for sid, (series, cell) in sorted(target.cells.items()):
                merged = Cell()
                if sid in summaries:
                    merged = Cell.from_entry(summaries[sid], sketches.get(sid))
                merged.merge(cell)
                summary, sketch = merged.to_entry(series.labels, series.kind)
                key = len(sid.encode()) + 1
                keys = target.keys.get(sid)
                grown = size + key * 2 + stored_size(summary) + len(sketch)
                if sid in summaries:
                    grown -= key * 2 + stored_size(summaries[sid]) + stored_size(sketches.get(sid) or b"")
                if keys is not None:
                    grown += len(keys) - (len(point_keys[sid]) if sid in point_keys else -key)
                if grown > max_bytes:
                    reason = _too_large(
                        f"the minute rollup of {series.metric} (bucket {target.unit.bucket})",
                        grown,
                        max_bytes,
                    )
                    result.refused.append((series.metric, reason, cell.points))
                    refused_sids.add(sid)
                    continue
                summaries[sid], sketches[sid] = summary, sketch
                if keys is not None:
                    point_keys[sid] = keys
                size = grown
            writes.append((target.ref, document))
        for ref, doc in writes:
            transaction.set(ref, doc)
        for (key, hour), (metric_doc, bucket, minutes) in stamps.items():
            ref = metric_doc.collection(MINUTE_STAMPS).document(rollup_id(key, hour, shard))
            transaction.set(ref, stamps_document(bucket, hour, shard, minutes), merge=True)
        result.writes = len(writes) + len(stamps)
        if refused_sids:
            result.written = [series for series in result.written if series.sid not in refused_sids]
        return result

    return run_transaction(apply)
