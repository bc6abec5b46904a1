"""How the writer cuts a ``Batch`` into units, each applied whole by one transaction and
recognised whole on a retry, and packs them into transactions; and the ``applied`` entries by
which a document or stream state records the batches it holds (``writer.py`` says why)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from functions.ingestion.aggregate import MINUTE_NANOS, Batch, SeriesBatch
from shared.metrics.store import APPLIED, bucket_key

# Documents (rollups and stream groups) per transaction: a commit carries at most 10 MiB and each
# document is kept under Firestore's 1 MiB.
TXN_DOCUMENTS = 8


def minute_of(t: int) -> int:
    return t // MINUTE_NANOS


@dataclass
class Unit:
    """What one transaction applies whole, and a retry recognises whole (``writer.py``'s docstring).

    A cells unit: the series with cells in one bucket and minute. A stream unit: the cumulative
    streams of one origin (an SDK process and meter) in one bucket, whose states share one
    document (``group_id``)."""

    key: str  # the bucket's key
    bucket: int
    series: list[SeriesBatch]
    minutes: list[int]  # the rollup documents (minutes) it may write
    stream: bool
    origin: str = ""

    @property
    def streams(self) -> list[str]:
        return [s for series in self.series for s in self.streams_of(series)] if self.stream else []

    def streams_of(self, series: SeriesBatch) -> list[str]:
        """The streams of ``series`` this unit's origin sent."""
        return [s for s in series.streams if series.origins.get(s) == self.origin]

    @property
    def group_id(self) -> str:
        return hashlib.blake2b(f"{self.key}\x1d{self.origin}".encode(), digest_size=16).hexdigest()

    def documents(self) -> set[tuple[str, int]]:
        docs = {(self.key, minute) for minute in self.minutes}
        if self.stream:
            docs.add((self.group_id, -1))
        return docs


def units_of(batch: Batch) -> list[Unit]:
    cells: dict[tuple[str, int], Unit] = {}
    groups: dict[tuple[str, str], Unit] = {}
    for series in batch.series.values():
        bucket = batch.buckets[series.sid]
        key = bucket_key(series.metric, bucket)
        for minute in series.minutes:
            unit = cells.get((key, minute))
            if unit is None:
                unit = cells[(key, minute)] = Unit(key, bucket, [], [minute], stream=False)
            unit.series.append(series)
        for stream, points in series.streams.items():
            origin = series.origins[stream]
            group = groups.get((key, origin))
            if group is None:
                group = groups[(key, origin)] = Unit(key, bucket, [], [], stream=True, origin=origin)
            if not group.series or group.series[-1] is not series:
                group.series.append(series)
            group.minutes.extend(minute_of(p.time) for p in points)
    for group in groups.values():
        group.minutes = sorted(set(group.minutes))
    units = list(cells.values()) + list(groups.values())
    # Units of one bucket and minute next to each other, so that they share their documents.
    units.sort(key=lambda u: (u.key, u.minutes[0], u.stream, u.origin))
    return units


def chunk_units(
    units: Iterable[Unit], max_writes: int, max_documents: int = TXN_DOCUMENTS
) -> list[list[Unit]]:
    chunks: list[list[Unit]] = []
    current: list[Unit] = []
    docs: set[tuple[str, int]] = set()
    for unit in units:
        new_docs = unit.documents() - docs
        if current and (len(docs) + len(new_docs) > min(max_writes, max_documents)):
            chunks.append(current)
            current, docs = [], set()
            new_docs = unit.documents()
        current.append(unit)
        docs |= new_docs
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
