"""How the writer cuts a ``Batch`` into units, each applied whole by one transaction and
recognised whole on a retry, and packs them into transactions; and the ``applied`` entries by
which a document or stream state records the batches it holds (``writer.py`` says why)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from functions.ingestion.aggregate import MINUTE_NANOS, Batch, SeriesBatch
from functions.ingestion.series_registry import bucket_of
from shared.metrics.store import APPLIED, bucket_key

# Rollup documents per transaction: a commit carries at most 10 MiB and a bucket document is kept
# well under Firestore's 1 MiB per document, so 8 leave room for the stream states beside them.
TXN_ROLLUPS = 8


def minute_of(t: int) -> int:
    return t // MINUTE_NANOS


@dataclass
class Unit:
    """What one transaction applies whole, and a retry recognises whole (``writer.py``'s docstring)."""

    key: str  # the bucket's key
    bucket: int
    series: list[SeriesBatch]  # a cells unit: those with cells in its minute; a stream unit: one
    minutes: list[int]  # the rollup documents (minutes) it may write
    stream: bool

    @property
    def streams(self) -> list[str]:
        return [stream for series in self.series for stream in series.streams] if self.stream else []


def units_of(batch: Batch) -> list[Unit]:
    cells: dict[tuple[str, int], Unit] = {}
    streams: list[Unit] = []
    for series in batch.series.values():
        bucket = bucket_of(series.sid)
        key = bucket_key(series.metric, bucket)
        for minute in series.minutes:
            unit = cells.get((key, minute))
            if unit is None:
                unit = cells[(key, minute)] = Unit(key, bucket, [], [minute], stream=False)
            unit.series.append(series)
        if series.streams:
            minutes = sorted({minute_of(p.time) for points in series.streams.values() for p in points})
            streams.append(Unit(key, bucket, [series], minutes, stream=True))
    units = list(cells.values()) + streams
    # Units of one bucket and minute next to each other, so that they share their documents.
    units.sort(key=lambda u: (u.key, u.minutes[0], u.stream, u.series[0].sid))
    return units


def chunk_units(units: Iterable[Unit], max_writes: int, max_rollups: int = TXN_ROLLUPS) -> list[list[Unit]]:
    chunks: list[list[Unit]] = []
    current: list[Unit] = []
    docs: set[tuple[str, int]] = set()
    writes = 0
    for unit in units:
        new_docs = {(unit.key, minute) for minute in unit.minutes} - docs
        cost = len(new_docs) + len(unit.streams)
        if current and (writes + cost > max_writes or len(docs) + len(new_docs) > max_rollups):
            chunks.append(current)
            current, docs, writes = [], set(), 0
            new_docs = {(unit.key, minute) for minute in unit.minutes}
            cost = len(new_docs) + len(unit.streams)
        current.append(unit)
        docs |= new_docs
        writes += cost
    if current:
        chunks.append(current)
    return chunks


# 96 bits of the batch's hash: unique among the batches one document sees within the lateness
# allowance, and short, since a hot minute rollup lists every batch that wrote it.
TOKEN_CHARS = 24


def applied_token(batch_id: str) -> str:
    return batch_id[:TOKEN_CHARS]


def applied_entry(token: str, until: int) -> str:
    """An ``applied`` entry: the batch and the end (epoch s) of the latest minute it wrote there."""
    return f"{token}@{until}"


def lists_batch(doc: dict[str, Any] | None, token: str) -> bool:
    prefix = token + "@"
    return any(entry.startswith(prefix) for entry in (doc or {}).get(APPLIED) or ())


def kept_entries(doc: dict[str, Any] | None, oldest: int) -> list[str]:
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
